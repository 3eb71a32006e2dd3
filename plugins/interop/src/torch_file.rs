//! Reads the files `torch.save` writes (PyTorch >= 1.6: a zip archive with `data.pkl`, a
//! pickle whose tensors point at raw storages under `data/`). The legacy (pre-1.6) format
//! is refused with the one line that converts it.

use rolekd_core::{Error, Result};
use rolekd_pickle::{load_torch, StorageKind, TensorRef, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

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
    let value = load_torch(&pkl).map_err(|e| bad(format!("{pkl_name}: {e}")))?;
    let mut refs = Vec::new();
    named_refs(&value, "", &mut refs);
    if refs.is_empty() {
        let what = match &value {
            Value::Opaque(name) => format!("a pickled `{name}` object"),
            _ => "no tensors".to_string(),
        };
        return Err(bad(format!(
            "{what}: save the model's state_dict instead (`torch.save(model.state_dict(), FILE)`)"
        )));
    }
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    for (name, r) in refs {
        let key = &r.storage.key;
        let kind = tch_kind(r.storage.kind);
        if !storages.contains_key(key) {
            let bytes = read(&mut zip, &format!("{root}data/{key}"))?;
            let elem = kind.elt_size_in_bytes();
            if bytes.len() % elem != 0 {
                return Err(bad(format!("storage {key} has a partial element")));
            }
            let t = Tensor::f_from_data_size(&bytes, &[(bytes.len() / elem) as i64], kind)
                .map_err(|e| bad(format!("storage {key}: {e}")))?;
            storages.insert(key.clone(), t);
        }
        let s = &storages[key];
        let numel = s.size()[0];
        let last = r.offset
            + r.size
                .iter()
                .zip(&r.stride)
                .map(|(n, st)| (n - 1).max(0) * st)
                .sum::<i64>();
        if r.size.contains(&0) {
            out.push((name, Tensor::zeros(&r.size, (kind, tch::Device::Cpu))));
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

fn tch_kind(k: StorageKind) -> Kind {
    match k {
        StorageKind::Float => Kind::Float,
        StorageKind::Double => Kind::Double,
        StorageKind::Half => Kind::Half,
        StorageKind::BFloat16 => Kind::BFloat16,
        StorageKind::Long => Kind::Int64,
        StorageKind::Int => Kind::Int,
        StorageKind::Short => Kind::Int16,
        StorageKind::Char => Kind::Int8,
        StorageKind::Byte => Kind::Uint8,
        StorageKind::Bool => Kind::Bool,
    }
}

/// Every tensor in `v`, named by the dotted path of dict keys and list indices.
fn named_refs(v: &Value, prefix: &str, out: &mut Vec<(String, TensorRef)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Tensor(t) => out.push((prefix.to_string(), t.clone())),
        Value::Dict(d) => {
            for (k, x) in d {
                let key = match k {
                    Value::Int(i) => i.to_string(),
                    other => match other.text() {
                        Some(t) => t,
                        None => continue,
                    },
                };
                named_refs(x, &join(&key), out);
            }
        }
        Value::List(l) | Value::Tuple(l) => {
            for (i, x) in l.iter().enumerate() {
                named_refs(x, &join(&i.to_string()), out);
            }
        }
        _ => {}
    }
}
