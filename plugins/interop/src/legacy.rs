//! The legacy (pre-1.6) `torch.save` format, read without Python: RepDistiller's released
//! teachers (2019) are in it. Facts from PyTorch's `torch/serialization.py`
//! (`_legacy_save`, `_legacy_load`); the file is a sequence of
//!
//! 1. a pickled magic number, `0x1950a86a20f9469cfc6c`;
//! 2. a pickled protocol version, 1001;
//! 3. a pickled `sys_info` dict (`little_endian`, the C type sizes);
//! 4. the pickled object, whose persistent ids name storages,
//!    `('storage', torch.FloatStorage, key, location, numel, view)` (`view`: None, or
//!    `(view_key, offset, size)` in files of PyTorch versions with storage views);
//! 5. a pickled list of the storage keys, in the order of the records;
//! 6. one record per key: its element count (8 bytes, little-endian), then the elements'
//!    bytes (little-endian: big-endian files are refused).
//!
//! Bytes after the last record are ignored, as `torch.load` ignores them.

use rolekd_pickle::{load_torch_from, PickleError, Storage, TorchPickle, Value};
use std::collections::HashMap;
use tch::Tensor;

/// `torch.serialization.MAGIC_NUMBER`, the first pickle of a legacy file.
const MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// Why a legacy file could not be read, located by byte offset (and record).
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("the {part}: {source}")]
    Pickle {
        part: &'static str,
        source: PickleError,
    },
    #[error("byte {at}: {what}")]
    Header { at: usize, what: String },
    #[error("storage record {index} of {count} (key `{key}`, byte {at}): {what}")]
    Record {
        index: usize,
        count: usize,
        key: String,
        at: usize,
        what: String,
    },
}

/// A legacy file's object (tensors as storage views) and its storages, by key.
pub struct Legacy {
    pub value: Value,
    pub storages: HashMap<String, Tensor>,
}

/// Whether `head` (a file's first bytes) looks like a legacy file: a pickle, where the
/// zip-based format starts with `PK`.
pub fn is_legacy(head: &[u8]) -> bool {
    head.first() == Some(&0x80)
}

/// Reads a whole legacy file.
pub fn read_legacy(bytes: &[u8]) -> Result<Legacy, LegacyError> {
    let mut at = check_magic(bytes)?;
    let version = pickle(bytes, at, "protocol version")?;
    if version.value != Value::Int(PROTOCOL_VERSION) {
        return Err(LegacyError::Header {
            at,
            what: format!(
                "protocol version {}, expected {PROTOCOL_VERSION}",
                describe(&version.value)
            ),
        });
    }
    at = version.end;
    let info = pickle(bytes, at, "sys_info dict")?;
    if info.value.get("little_endian") == Some(&Value::Bool(false)) {
        return Err(LegacyError::Header {
            at,
            what: "written on a big-endian machine: not supported".into(),
        });
    }
    let object = pickle(bytes, info.end, "saved object")?;
    let keys = pickle(bytes, object.end, "storage key list")?;
    let key_list = key_texts(&keys.value).ok_or_else(|| LegacyError::Header {
        at: object.end,
        what: format!(
            "the storage keys are {}, expected a list of strings",
            keys.value.kind()
        ),
    })?;
    let storages = read_records(bytes, keys.end, &key_list, &object.storages)?;
    Ok(Legacy {
        value: object.value,
        storages,
    })
}

fn pickle(bytes: &[u8], at: usize, part: &'static str) -> Result<TorchPickle, LegacyError> {
    load_torch_from(bytes, at).map_err(|source| LegacyError::Pickle { part, source })
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        other => other.kind(),
    }
}

fn key_texts(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::List(items) => items.iter().map(Value::text).collect(),
        _ => None,
    }
}

/// The magic number's pickle: PROTO, an optional FRAME, a 10-byte LONG1, STOP (the number
/// needs 80 bits, more than the unpickler's integers hold). Returns where it ends.
fn check_magic(bytes: &[u8]) -> Result<usize, LegacyError> {
    let not_magic = || LegacyError::Header {
        at: 0,
        what: format!(
            "no legacy torch.save magic number (0x{MAGIC:x}) at the start: not a torch.save file"
        ),
    };
    let mut at = 2;
    if bytes.first() != Some(&0x80) || bytes.len() < at {
        return Err(not_magic());
    }
    if bytes.get(at) == Some(&0x95) {
        at += 9;
    }
    let long = bytes.get(at..at + 13).ok_or_else(not_magic)?;
    let mut le = [0u8; 16];
    le[..10].copy_from_slice(&long[2..12]);
    if long[..2] != [0x8a, 10] || u128::from_le_bytes(le) != MAGIC || long[12] != b'.' {
        return Err(not_magic());
    }
    Ok(at + 13)
}

/// The records from byte `at` on, one per key in `keys`; element types and sizes come from
/// the persistent ids (`named`).
fn read_records(
    bytes: &[u8],
    mut at: usize,
    keys: &[String],
    named: &[Storage],
) -> Result<HashMap<String, Tensor>, LegacyError> {
    let mut out = HashMap::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let fail = |at: usize, what: String| LegacyError::Record {
            index: index + 1,
            count: keys.len(),
            key: key.clone(),
            at,
            what,
        };
        let storage = named
            .iter()
            .find(|s| &s.key == key)
            .ok_or_else(|| fail(at, "no persistent id names this storage".into()))?;
        let (tensor, end) = read_record(bytes, at, storage).map_err(|what| fail(at, what))?;
        out.insert(key.clone(), tensor);
        at = end;
    }
    Ok(out)
}

/// One record at byte `at`: the storage as a 1-D tensor, and where the next one starts.
fn read_record(bytes: &[u8], at: usize, storage: &Storage) -> Result<(Tensor, usize), String> {
    let kind = crate::storage_kind::tch_kind(storage.kind);
    let left = bytes.len().saturating_sub(at);
    let header: [u8; 8] = bytes
        .get(at..at + 8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format!("truncated: the 8-byte element count needs 8 bytes, {left} left"))?;
    let count = u64::from_le_bytes(header);
    if let Some(numel) = storage.numel {
        if count != numel as u64 {
            return Err(format!(
                "{count} elements, but the object's persistent id says {numel}"
            ));
        }
    }
    let elem = kind.elt_size_in_bytes() as u64;
    let size = count
        .checked_mul(elem)
        .filter(|&n| n <= (left - 8) as u64)
        .ok_or_else(|| {
            format!(
                "truncated: {count} {kind:?} elements need {} bytes, {} left",
                count.saturating_mul(elem),
                left - 8
            )
        })? as usize;
    let data = &bytes[at + 8..at + 8 + size];
    let tensor =
        Tensor::f_from_data_size(data, &[count as i64], kind).map_err(|e| format!("{e}"))?;
    Ok((tensor, at + 8 + size))
}

#[cfg(test)]
mod tests;
