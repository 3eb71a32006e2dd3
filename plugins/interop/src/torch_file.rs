//! Reads the files `torch.save` writes (PyTorch >= 1.6: a zip archive with `data.pkl`, a
//! pickle whose tensors point at raw storages under `data/`). The legacy (pre-1.6) format
//! is refused with the one line that converts it.

use crate::torch_pickle::{named_refs, unpickle, Value};
use rolekd_core::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::Tensor;

/// The tensors of a `torch.save` file, named by their dotted path (`model.conv1.weight`
/// for `{'model': state_dict}`), in file order.
pub fn read_torch_file(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let origin = path.display().to_string();
    let bad = |what: String| Error::Data(format!("{origin}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(z) => z,
        Err(e) => {
            let mut head = [0u8; 2];
            let legacy = std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && head[0] == 0x80;
            return Err(bad(if legacy {
                "a legacy (pre-1.6) torch.save file; convert it once with \
                 `python -c \"import torch,sys; torch.save(torch.load(sys.argv[1], map_location='cpu'), sys.argv[2])\" OLD NEW`"
                    .to_string()
            } else {
                format!("not a torch.save archive ({e}); truncated or another format?")
            }));
        }
    };
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .map(str::to_string)
        .ok_or_else(|| bad("no data.pkl in the archive: not a torch.save file".into()))?;
    let root = pkl_name.trim_end_matches("data.pkl").to_string();
    let read = |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| -> Result<Vec<u8>> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| bad(format!("archive entry `{name}`: {e}")))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| bad(format!("archive entry `{name}`: {e} (truncated file?)")))?;
        Ok(out)
    };
    if let Ok(order) = read(&mut zip, &format!("{root}byteorder")) {
        if order.trim_ascii() != b"little" {
            return Err(bad("a big-endian archive: not supported".into()));
        }
    }
    let pkl = read(&mut zip, &pkl_name)?;
    let value = unpickle(&pkl, &format!("{origin}: {pkl_name}"))?;
    let mut refs = Vec::new();
    named_refs(&value, "", &mut refs);
    if refs.is_empty() {
        let what = match &value {
            Value::Object(name) => format!("a pickled `{name}` object"),
            _ => "no tensors".to_string(),
        };
        return Err(bad(format!(
            "{what}: save the model's state_dict instead (`torch.save(model.state_dict(), FILE)`)"
        )));
    }
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    for (name, r) in refs {
        if !storages.contains_key(&r.storage) {
            let bytes = read(&mut zip, &format!("{root}data/{}", r.storage))?;
            let elem = r.kind.elt_size_in_bytes();
            if bytes.len() % elem != 0 {
                return Err(bad(format!("storage {} has a partial element", r.storage)));
            }
            let t = Tensor::f_from_data_size(&bytes, &[(bytes.len() / elem) as i64], r.kind)
                .map_err(|e| bad(format!("storage {}: {e}", r.storage)))?;
            storages.insert(r.storage.clone(), t);
        }
        let s = &storages[&r.storage];
        let numel = s.size()[0];
        let last = r.offset
            + r.size
                .iter()
                .zip(&r.stride)
                .map(|(n, st)| (n - 1).max(0) * st)
                .sum::<i64>();
        if r.size.contains(&0) {
            out.push((name, Tensor::zeros(&r.size, (r.kind, tch::Device::Cpu))));
            continue;
        }
        if last >= numel || r.offset < 0 {
            return Err(bad(format!(
                "`{name}` reaches past its storage ({last} >= {numel} elements)"
            )));
        }
        let t = s
            .f_as_strided(&r.size, &r.stride, r.offset)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| bad(format!("`{name}`: {e}")))?;
        out.push((name, t));
    }
    Ok(out)
}
