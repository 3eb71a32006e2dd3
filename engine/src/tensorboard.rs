//! TensorBoard event files, so runs open in TensorBoard (and, through it, in W&B or MLflow
//! importers) without Python on the training machine.
//!
//! An event file is a sequence of TFRecords: `u64` length (little endian), masked CRC-32C
//! of the length, the payload, masked CRC-32C of the payload. Each payload is an `Event`
//! protocol buffer; the first carries `file_version: "brain.Event:2"`, the others a
//! `Summary` of scalar values. The few protobuf fields needed are encoded by hand here
//! (field numbers from TensorBoard's `event.proto` and `summary.proto`) rather than pulling
//! a protobuf code generator into the build; the CRC comes from the `crc` crate.

use rolekd_core::error::{Error, Result};
use rolekd_core::files::write_atomic;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name every stage writes (TensorBoard reads any name containing `tfevents`).
pub const EVENT_FILE: &str = "events.out.tfevents.rolekd";

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// One scalar at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub tag: String,
    pub step: i64,
    pub value: f64,
    /// Unix seconds.
    pub wall_time: f64,
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = CRC32C.checksum(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn length_delimited(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5 }`.
fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::with_capacity(64);
    e.push(0x09); // field 1, 64-bit
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10); // field 2, varint
        varint(step as u64, &mut e);
    }
    body(&mut e);
    e
}

fn file_version_event(wall_time: f64) -> Vec<u8> {
    event(wall_time, 0, |e| length_delimited(3, b"brain.Event:2", e))
}

/// `Summary { value = 1: Value { tag = 1, simple_value = 2 (float) } }`.
fn scalar_event(s: &Scalar) -> Vec<u8> {
    let mut value = Vec::with_capacity(s.tag.len() + 8);
    length_delimited(1, s.tag.as_bytes(), &mut value);
    value.push(0x15); // field 2, 32-bit
    value.extend_from_slice(&(s.value as f32).to_le_bytes());
    let mut summary = Vec::with_capacity(value.len() + 4);
    length_delimited(1, &value, &mut summary);
    event(s.wall_time, s.step, |e| length_delimited(5, &summary, e))
}

fn record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
}

/// The bytes of an event file holding `scalars` (after the version record).
pub fn encode(scalars: &[Scalar], created: f64) -> Vec<u8> {
    let mut out = Vec::new();
    record(&file_version_event(created), &mut out);
    for s in scalars {
        record(&scalar_event(s), &mut out);
    }
    out
}

/// A stage's event file. It is rewritten whole from the metrics history when a run starts
/// or resumes (so a resumed or exploited run never shows an epoch twice), then appended to
/// once per epoch, which a live TensorBoard follows.
pub struct EventFile {
    path: PathBuf,
}

impl EventFile {
    /// Writes `dir/`[`EVENT_FILE`] afresh with `history`.
    pub fn create(dir: &Path, history: &[Scalar]) -> Result<EventFile> {
        let path = dir.join(EVENT_FILE);
        let created = history.first().map_or_else(unix_now, |s| s.wall_time);
        write_atomic(&path, &encode(history, created))?;
        Ok(EventFile { path })
    }

    /// Appends `scalars` as one write.
    pub fn append(&self, scalars: &[Scalar]) -> Result<()> {
        let mut bytes = Vec::new();
        for s in scalars {
            record(&scalar_event(s), &mut bytes);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&self.path, e))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720, appendix B.4).
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn records_frame_their_payloads() {
        let s = Scalar {
            tag: "loss/total".into(),
            step: 3,
            value: 0.5,
            wall_time: 1.0e9,
        };
        let bytes = encode(std::slice::from_ref(&s), 1.0e9);
        // Walk the records back: lengths and CRCs must agree.
        let mut at = 0;
        let mut payloads = Vec::new();
        while at < bytes.len() {
            let len_bytes: [u8; 8] = bytes[at..at + 8].try_into().unwrap();
            let len = u64::from_le_bytes(len_bytes) as usize;
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc(&len_bytes));
            let payload = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(payload));
            payloads.push(payload.to_vec());
            at += 16 + len;
        }
        assert_eq!(payloads.len(), 2);
        assert!(payloads[0].ends_with(b"brain.Event:2"));
        let p = &payloads[1];
        assert!(p.windows(10).any(|w| w == b"loss/total"));
        assert!(p.ends_with(&0.5f32.to_le_bytes()));
    }

    #[test]
    fn append_adds_after_the_history() {
        let d = tempfile::tempdir().unwrap();
        let s = |step| Scalar {
            tag: "acc".into(),
            step,
            value: 0.1 * step as f64,
            wall_time: 1.0e9 + step as f64,
        };
        let f = EventFile::create(d.path(), &[s(1)]).unwrap();
        f.append(&[s(2)]).unwrap();
        let whole = std::fs::read(d.path().join(EVENT_FILE)).unwrap();
        assert_eq!(whole, encode(&[s(1), s(2)], 1.0e9 + 1.0));
    }
}
