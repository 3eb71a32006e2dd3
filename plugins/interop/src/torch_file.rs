//! Reads the files `torch.save` writes: PyTorch >= 1.6's zip archive (`data.pkl`, a pickle
//! whose tensors point at raw storages under `data/`), and the legacy (pre-1.6) format, a
//! sequence of pickles followed by the raw storages ([`crate::legacy`]).

use crate::legacy::{is_legacy, read_legacy};
use crate::storage_kind::tch_kind;
use rolekd_core::{Error, Result};
use rolekd_pickle::{load_torch, Storage, TensorRef, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::Tensor;

/// The tensors of a `torch.save` file, named by their dotted path (`model.conv1.weight`
/// for `{'model': state_dict}`), in file order.
pub fn read_torch_file(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let origin = path.display().to_string();
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    if is_legacy(&head) {
        return read_legacy_file(path, &origin);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Err(Error::Data(format!(
            "{origin}: a tar archive (torch.save before PyTorch 0.4?): not supported; {CONVERT}"
        )));
    }
    read_zip_file(path, &origin)
}

/// The one line that rewrites any file `torch.load` reads in today's format.
const CONVERT: &str = "convert it once with `python -c \"import torch,sys; \
     torch.save(torch.load(sys.argv[1], map_location='cpu'), sys.argv[2])\" OLD NEW`";

fn read_legacy_file(path: &Path, origin: &str) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let legacy = read_legacy(&bytes)
        .map_err(|e| Error::Data(format!("{origin}: a legacy (pre-1.6) torch.save file: {e}")))?;
    let refs = tensor_refs(&legacy.value, origin)?;
    build_tensors(origin, refs, |s: &Storage| {
        legacy
            .storages
            .get(&s.key)
            .map(Tensor::shallow_clone)
            .ok_or_else(|| {
                Error::Data(format!(
                    "{origin}: storage `{}` has no record in the file",
                    s.key
                ))
            })
    })
}

fn read_zip_file(path: &Path, origin: &str) -> Result<Vec<(String, Tensor)>> {
    let bad = |what: String| Error::Data(format!("{origin}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        bad(format!(
            "not a torch.save archive ({e}); truncated or another format?"
        ))
    })?;
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
    let refs = tensor_refs(&value, origin)?;
    build_tensors(origin, refs, |s: &Storage| {
        let bytes = read(&mut zip, &format!("{root}data/{}", s.key))?;
        let kind = tch_kind(s.kind);
        let elem = kind.elt_size_in_bytes();
        if bytes.len() % elem != 0 {
            return Err(bad(format!("storage {} has a partial element", s.key)));
        }
        Tensor::f_from_data_size(&bytes, &[(bytes.len() / elem) as i64], kind)
            .map_err(|e| bad(format!("storage {}: {e}", s.key)))
    })
}

/// Every tensor in a file's object; none is an error that says what the file holds.
fn tensor_refs(value: &Value, origin: &str) -> Result<Vec<(String, TensorRef)>> {
    let mut refs = Vec::new();
    named_refs(value, "", &mut refs);
    if refs.is_empty() {
        let what = match value {
            Value::Opaque(name) => format!("a pickled `{name}` object"),
            _ => "no tensors".to_string(),
        };
        return Err(Error::Data(format!(
            "{origin}: {what}: save the model's state_dict instead (`torch.save(model.state_dict(), FILE)`)"
        )));
    }
    Ok(refs)
}

/// The tensors `refs` describe, each a contiguous copy of its view of a storage; `storage`
/// gives a storage's elements as a 1-D tensor (asked once per key: views share it).
fn build_tensors(
    origin: &str,
    refs: Vec<(String, TensorRef)>,
    mut storage: impl FnMut(&Storage) -> Result<Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    let bad = |what: String| Error::Data(format!("{origin}: {what}"));
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    for (name, r) in refs {
        let kind = tch_kind(r.storage.kind);
        if r.size.iter().chain(&r.stride).any(|&n| n < 0) || r.offset < 0 {
            return Err(bad(format!(
                "`{name}` has a negative size, stride or offset"
            )));
        }
        if r.size.contains(&0) {
            out.push((name, Tensor::zeros(&r.size, (kind, tch::Device::Cpu))));
            continue;
        }
        let key = &r.storage.key;
        if !storages.contains_key(key) {
            let t = storage(&r.storage)?;
            storages.insert(key.clone(), t);
        }
        let s = &storages[key];
        let numel = s.size()[0];
        // The last element the view touches (saturating: sizes come from the file).
        let offset = r.offset.saturating_add(r.storage.view_offset);
        let last = r.size.iter().zip(&r.stride).fold(offset, |acc, (n, st)| {
            acc.saturating_add((n - 1).saturating_mul(*st))
        });
        if last >= numel {
            return Err(bad(format!(
                "`{name}` reaches past its storage ({last} >= {numel} elements)"
            )));
        }
        let t = s
            .f_as_strided(&r.size, &r.stride, offset)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| bad(format!("`{name}`: {e}")))?;
        out.push((name, t));
    }
    Ok(out)
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
