//! Reading dataset files: whole, gunzipped when they start with the gzip magic, with
//! messages that name the file.

use flate2::read::MultiGzDecoder;
use rolekd_core::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads `path` whole; a gzip file (detected by its magic, not its name) is decompressed.
/// A missing file is an [`Error::Data`] that ends with `hint` (how to get the data).
pub fn read_maybe_gz(path: &Path, hint: &str) -> Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Data(format!(
                "{}: not found; {hint}",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    // The gzip trailer holds the uncompressed size mod 2^32: a capacity hint only.
    let hint_len = bytes
        .len()
        .checked_sub(4)
        .map(|i| u32::from_le_bytes(bytes[i..].try_into().expect("4 bytes")) as usize)
        .unwrap_or(0)
        .min(1 << 30);
    let mut out = Vec::with_capacity(hint_len);
    MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| Error::Data(format!("{}: corrupt gzip stream: {e}", path.display())))?;
    Ok(out)
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists; when neither does, a
/// "not found" error naming both and ending with `hint`.
pub fn find_plain_or_gz(dir: &Path, name: &str, hint: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::Data(format!(
        "{}[.gz]: not found; {hint}",
        plain.display()
    )))
}
