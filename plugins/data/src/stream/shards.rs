//! WebDataset tar shards: samples are tar members sharing a key (`<key>.jpg` + `<key>.cls`),
//! the format large image sets ship in. At start each shard's headers are read (a seek per
//! member, no image bytes) into an index of where every image's bytes lie; the workers then
//! read each image with one positioned read.

use rolekd_core::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where one image's bytes lie in a shard.
#[derive(Debug, Clone)]
pub struct Member {
    pub shard: u32,
    pub offset: u64,
    pub len: u64,
    /// `<shard file>:<member path>`, for messages.
    pub name: String,
}

/// The extensions of image members, and of the label member.
const IMAGE_EXTS: [&str; 3] = ["jpg", "jpeg", "png"];
const LABEL_EXT: &str = "cls";

/// Expands one `{a..b}` range (zero-padded as `a` is) in `pattern`:
/// `d/train-{000..002}.tar` -> `d/train-000.tar`, `d/train-001.tar`, `d/train-002.tar`.
pub fn expand(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|c| open + c)
        .ok_or("`{` without `}`")?;
    let (a, b) = pattern[open + 1..close]
        .split_once("..")
        .ok_or("expected `{first..last}`")?;
    let first: u64 = a.parse().map_err(|_| format!("`{a}` is not a number"))?;
    let last: u64 = b.parse().map_err(|_| format!("`{b}` is not a number"))?;
    if last < first {
        return Err(format!("empty range {{{a}..{b}}}"));
    }
    let width = a.len();
    Ok((first..=last)
        .map(|n| format!("{}{n:0width$}{}", &pattern[..open], &pattern[close + 1..]))
        .collect())
}

/// The images and labels of `shards`, in shard then member order. A missing shard is an
/// error; a damaged one too, or with `skip_bad` a warning (its samples before the damage
/// kept).
pub fn index(shards: &[PathBuf], skip_bad: bool) -> Result<(Vec<Member>, Vec<i64>)> {
    let mut members = Vec::new();
    let mut labels = Vec::new();
    for (k, path) in shards.iter().enumerate() {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        match index_one(k as u32, path, file, &mut members, &mut labels) {
            Ok(()) => {}
            Err(e) if skip_bad => {
                eprintln!("warning: shard left out after its damage (on_bad_image: skip): {e}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok((members, labels))
}

/// A shard's samples by key, in member order: (image member, label).
#[derive(Default)]
struct Samples {
    by_key: BTreeMap<String, (Option<Member>, Option<i64>)>,
    order: Vec<String>,
}

/// Appends one shard's complete samples (an image and a label) to `members` / `labels`;
/// after damage, the samples complete before it are appended and the damage returned.
fn index_one(
    shard: u32,
    path: &Path,
    file: File,
    members: &mut Vec<Member>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let mut samples = Samples::default();
    let read = read_members(shard, path, file, &mut samples);
    for key in samples.order {
        match samples.by_key.remove(&key) {
            Some((Some(m), Some(l))) => {
                members.push(m);
                labels.push(l);
            }
            Some((Some(_), None)) if read.is_ok() => {
                return Err(Error::Data(format!(
                    "{}: sample `{key}` has an image but no .{LABEL_EXT} label",
                    path.display()
                )))
            }
            _ => {} // a label without an image, or a sample cut by the damage
        }
    }
    read
}

/// Reads a shard's headers (and label members) into `samples`.
fn read_members(shard: u32, path: &Path, file: File, samples: &mut Samples) -> Result<()> {
    let bad = |e: std::io::Error| {
        Error::Data(format!("{}: not a readable tar shard: {e}", path.display()))
    };
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_key(&member) else {
            continue;
        };
        let ext = ext.to_ascii_lowercase();
        if !samples.by_key.contains_key(key) {
            samples.order.push(key.to_string());
        }
        let slot = samples.by_key.entry(key.to_string()).or_default();
        if IMAGE_EXTS.contains(&ext.as_str()) {
            slot.0 = Some(Member {
                shard,
                offset: entry.raw_file_position(),
                len: entry.size(),
                name: format!("{}:{member}", path.display()),
            });
        } else if ext == LABEL_EXT {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).map_err(bad)?;
            let label = text.trim().parse::<i64>().map_err(|_| {
                Error::Data(format!(
                    "{}:{member}: label `{}` is not an integer",
                    path.display(),
                    text.trim()
                ))
            })?;
            slot.1 = Some(label);
        }
    }
    Ok(())
}

/// WebDataset's key and extension of a member path: the key ends at the first `.` of the
/// file name (`a/b.c.jpg` -> `a/b`, `c.jpg`).
fn split_key(member: &str) -> Option<(&str, &str)> {
    let name_start = member.rfind('/').map_or(0, |i| i + 1);
    let dot = member[name_start..].find('.')? + name_start;
    let ext = &member[dot + 1..];
    let ext = ext.rsplit('.').next().unwrap_or(ext);
    Some((&member[..dot], ext))
}

/// Reads one member's bytes with a positioned read.
pub fn read(shards: &[PathBuf], m: &Member) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let path = &shards[m.shard as usize];
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; m.len as usize];
    file.read_exact_at(&mut buf, m.offset)
        .map_err(|e| Error::Data(format!("{}: {e}", m.name)))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_with_their_padding() {
        assert_eq!(
            expand("s-{08..10}.tar").unwrap(),
            ["s-08.tar", "s-09.tar", "s-10.tar"]
        );
        assert_eq!(expand("one.tar").unwrap(), ["one.tar"]);
        assert!(expand("s-{3..1}.tar").is_err());
        assert!(expand("s-{a..b}.tar").is_err());
    }

    #[test]
    fn keys_end_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("d.x/n01_5.jpg"), Some(("d.x/n01_5", "jpg")));
        assert_eq!(split_key("k.seg.png"), Some(("k", "png")));
        assert_eq!(split_key("README"), None);
    }

    fn shard(dir: &Path, name: &str, samples: &[(&str, &[u8], Option<&str>)]) -> PathBuf {
        let path = dir.join(name);
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (key, image, label) in samples {
            let mut h = tar::Header::new_gnu();
            h.set_size(image.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{key}.jpg"), *image).unwrap();
            if let Some(l) = label {
                let mut h = tar::Header::new_gnu();
                h.set_size(l.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, format!("{key}.cls"), l.as_bytes())
                    .unwrap();
            }
        }
        b.finish().unwrap();
        path
    }

    #[test]
    fn an_index_finds_every_image_and_label_and_reads_the_bytes_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = shard(
            dir.path(),
            "a.tar",
            &[("x/1", b"first", Some("3")), ("x/2", b"second!", Some("0"))],
        );
        let b = shard(dir.path(), "b.tar", &[("y/1", b"third", Some("2\n"))]);
        let shards = vec![a, b];
        let (members, labels) = index(&shards, false).unwrap();
        assert_eq!(labels, [3, 0, 2]);
        let bytes: Vec<Vec<u8>> = members.iter().map(|m| read(&shards, m).unwrap()).collect();
        assert_eq!(
            bytes,
            [b"first".to_vec(), b"second!".to_vec(), b"third".to_vec()]
        );
        assert!(members[2].name.ends_with("b.tar:y/1.jpg"));
    }

    #[test]
    fn a_missing_label_is_named_and_a_broken_shard_is_skipped_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let a = shard(dir.path(), "a.tar", &[("k", b"img", None)]);
        let err = index(&[a], false).unwrap_err().to_string();
        assert!(err.contains("`k` has an image but no .cls"), "{err}");
        let good = shard(dir.path(), "g.tar", &[("k", b"img", Some("1"))]);
        let broken = dir.path().join("broken.tar");
        std::fs::write(&broken, vec![7u8; 700]).unwrap();
        assert!(index(&[good.clone(), broken.clone()], false).is_err());
        let (members, labels) = index(&[good, broken], true).unwrap();
        assert_eq!((members.len(), labels), (1, vec![1]));
    }
}
