//! The IDX format (LeCun's MNIST files): a 4-byte magic `00 00 <type> <ndims>`, `ndims`
//! big-endian u32 dimensions, then the data in row-major order.

use rolekd_core::{Error, Result};
use std::path::Path;

/// Magic of a 3-dimensional uint8 array: images (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of a 1-dimensional uint8 array: labels.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A parsed IDX array of bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn describe(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "IDX uint8 images",
        LABELS_MAGIC => "IDX uint8 labels",
        _ => "IDX uint8",
    }
}

/// Parses the contents of an IDX file (already decompressed) that must carry `magic`.
/// `path` only names the file in errors. Checks the magic, that the header is complete,
/// and that the data is exactly as long as the dimensions say.
pub fn parse(path: &Path, mut bytes: Vec<u8>, magic: u32) -> Result<IdxArray> {
    let bad = |msg: String| Error::Data(format!("{}: {msg}", path.display()));
    if bytes.len() < 4 {
        return Err(bad(format!(
            "truncated: {} bytes, shorter than the 4-byte IDX magic",
            bytes.len()
        )));
    }
    let found = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    if found != magic {
        return Err(bad(format!(
            "bad magic 0x{found:08x}, expected 0x{magic:08x} ({})",
            describe(magic)
        )));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated: expected a {header}-byte header, found {} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let payload = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let expected = header + payload;
    let shape = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x");
    if bytes.len() != expected {
        let what = if bytes.len() < expected {
            "truncated"
        } else {
            "too long"
        };
        return Err(bad(format!(
            "{what}: expected {expected} bytes ({header}-byte header + {shape} data), found {}",
            bytes.len()
        )));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Encodes an IDX uint8 array (used by tests and tools that write small IDX files).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse(Path::new("x"), bytes, IMAGES_MAGIC).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data.len(), 12);
        assert_eq!(a.data[11], 12);
    }

    #[test]
    fn too_long_and_short_header() {
        let mut bytes = encode(&[3], &[1, 2, 3]);
        bytes.push(0);
        let e = parse(Path::new("l"), bytes, LABELS_MAGIC).unwrap_err();
        assert!(e.to_string().contains("too long: expected 11 bytes"), "{e}");
        let e = parse(Path::new("l"), vec![0, 0, 8, 1, 0], LABELS_MAGIC).unwrap_err();
        assert!(
            e.to_string().contains("expected a 8-byte header, found 5"),
            "{e}"
        );
    }
}
