//! Where a search publishes its members' training states: the stage directory (the
//! default, hard links, for one machine or a shared file system mounted at the same path),
//! or an object store named by a URL (`file:///shared/ckpts`, `s3://bucket/prefix`), for
//! workers on machines that share nothing but the population store and that URL.
//!
//! Every published state gets a key of its own (`checkpoints/<member>/epoch-<e>-<tag>`,
//! `tag` random per publish), written create-only: a worker that lost its lease can finish
//! a late upload, but it can never overwrite a state the store references (its report is
//! refused by the lease check, so its upload stays unreferenced and is deleted with the
//! search's other states). On S3 the create-only put is a conditional `If-None-Match: *`
//! write; in a folder (the stage directory, `file://`) a state is linked into a staging
//! folder and renamed into place. S3 (and `memory://`, for tests) need the `cluster` feature.

#[cfg(feature = "cluster")]
use object::{get_bytes, list_keys, store_error, Key};
#[cfg(feature = "cluster")]
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
#[cfg(feature = "cluster")]
use rolekd_core::files::write_atomic;
use rolekd_core::{Error, Result};
use std::path::{Path, PathBuf};
#[cfg(feature = "cluster")]
use std::sync::Arc;

/// A published state's files: the trainer's epoch state.
pub use rolekd_engine::trainer::state::FILES as STATE_FILES;
/// The folder, inside a member's last published state, holding its final checkpoint (the
/// trainer's `checkpoint/`), so the stage can hand the best member on from any worker.
pub const FINAL: &str = "final";

/// The search's checkpoint store.
pub struct CheckpointStore {
    place: Place,
}

enum Place {
    /// Paths relative to a folder: the stage directory itself (`url` None), or a `file://`
    /// store's `<path>/<run>/`.
    Dir { root: PathBuf, url: Option<String> },
    /// Keys under `prefix` in an object store, driven by a runtime of its own.
    #[cfg(feature = "cluster")]
    Object {
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: String,
        runtime: tokio::runtime::Runtime,
    },
}

/// Whether `url` names a checkpoint store [`CheckpointStore::open`] can open.
pub fn is_checkpoint_url(url: &str) -> bool {
    ["file://", "s3://", "memory://"]
        .iter()
        .any(|p| url.starts_with(p))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Hard-links `from` to `to`, copying when linking is impossible.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(io(from))?;
    }
    Ok(())
}

/// Removes `dir` and everything in it; a missing one is fine.
pub fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) => std::fs::create_dir_all(p).map_err(io(p)),
        None => Ok(()),
    }
}

/// Links (or copies) the files `names` of `src` into `dst`, subfolders included.
fn link_files(src: &Path, dst: &Path, names: &[&str]) -> Result<()> {
    for f in names {
        let to = dst.join(f);
        create_parent(&to)?;
        link_or_copy(&src.join(f), &to)?;
    }
    Ok(())
}

impl CheckpointStore {
    /// States in the stage directory `dir` itself.
    pub fn in_dir(dir: &Path) -> Self {
        CheckpointStore {
            place: Place::Dir {
                root: dir.to_path_buf(),
                url: None,
            },
        }
    }

    /// The object store `url`, holding the states of the search `run` under `<url>/<run>/`.
    /// `s3://bucket/prefix` takes its credentials, region and endpoint from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for a server of your own).
    pub fn open(url: &str, run: &str) -> Result<Self> {
        Self::open_with(url, run, &[])
    }

    /// [`CheckpointStore::open`], with `settings` (`AWS_*` names, as the environment
    /// gives them) taking precedence over the environment's.
    pub fn open_with(url: &str, run: &str, settings: &[(&str, String)]) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            let root = Path::new(path).join(run);
            std::fs::create_dir_all(&root).map_err(io(&root))?;
            return Ok(CheckpointStore {
                place: Place::Dir {
                    root,
                    url: Some(url.to_string()),
                },
            });
        }
        #[cfg(feature = "cluster")]
        return object::open(url, run, settings).map(|place| CheckpointStore { place });
        #[cfg(not(feature = "cluster"))]
        {
            let _ = settings;
            Err(match url.starts_with("s3://") || url.starts_with("memory://") {
                true => Error::Invalid(crate::without_cluster(&format!(
                    "checkpoint store `{url}`"
                ))),
                false => Error::Invalid(format!(
                    "checkpoint store `{url}`: expected file:///PATH, s3://BUCKET/PREFIX or memory://"
                )),
            })
        }
    }

    /// The store's location, for log lines.
    pub fn describe(&self) -> String {
        match &self.place {
            Place::Dir { root, url: None } => root.display().to_string(),
            Place::Dir {
                root,
                url: Some(url),
            } => format!("{url} ({})", root.display()),
            #[cfg(feature = "cluster")]
            Place::Object { url, prefix, .. } => format!("{url} ({prefix}/)"),
        }
    }

    /// Whether states live in the stage directory (a worker then needs that directory).
    pub fn is_stage_dir(&self) -> bool {
        self.stage_dir().is_some()
    }

    /// The stage directory holding the states, when they live in one.
    pub fn stage_dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir { root, url: None } => Some(root),
            _ => None,
        }
    }

    #[cfg(feature = "cluster")]
    fn key(prefix: &str, rel: &str) -> Key {
        Key::from(format!("{prefix}/{rel}"))
    }

    /// Writes the files `names` of `src` as the new state `rel`, create-only: an existing
    /// state is never replaced.
    pub fn put(&self, rel: &str, src: &Path, names: &[&str]) -> Result<()> {
        match &self.place {
            Place::Dir { root: dir, .. } => {
                let dst = dir.join(rel);
                if dst.exists() {
                    return Err(Error::Invalid(format!(
                        "{} exists already: published states are written once",
                        dst.display()
                    )));
                }
                let parent = dst.parent().expect("a state's path has a parent");
                let tmp = parent.join(format!(
                    ".tmp-{}",
                    dst.file_name().unwrap_or_default().to_string_lossy()
                ));
                remove_dir_if_exists(&tmp)?;
                std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
                link_files(src, &tmp, names)?;
                std::fs::rename(&tmp, &dst).map_err(io(&dst))
            }
            #[cfg(feature = "cluster")]
            Place::Object {
                url,
                store,
                prefix,
                runtime,
            } => runtime.block_on(async {
                for f in names {
                    let path = src.join(f);
                    let bytes = std::fs::read(&path).map_err(io(&path))?;
                    let key = Self::key(prefix, &format!("{rel}/{f}"));
                    let opts = PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    };
                    store
                        .put_opts(&key, PutPayload::from(bytes), opts)
                        .await
                        .map_err(|e| store_error(url, &format!("writing {key}"), e))?;
                }
                Ok(())
            }),
        }
    }

    /// Copies the files `names` of state `rel` into `dst` (replacing what is there).
    pub fn get(&self, rel: &str, dst: &Path, names: &[&str]) -> Result<()> {
        std::fs::create_dir_all(dst).map_err(io(dst))?;
        match &self.place {
            Place::Dir { root: dir, .. } => {
                for f in names {
                    let _ = std::fs::remove_file(dst.join(f));
                }
                link_files(&dir.join(rel), dst, names)
            }
            #[cfg(feature = "cluster")]
            Place::Object {
                url,
                store,
                prefix,
                runtime,
            } => runtime.block_on(async {
                for f in names {
                    let key = Self::key(prefix, &format!("{rel}/{f}"));
                    let bytes = get_bytes(store.as_ref(), url, &key).await?;
                    let to = dst.join(f);
                    create_parent(&to)?;
                    write_atomic(&to, &bytes)?;
                }
                Ok(())
            }),
        }
    }

    /// Reads one file of state `rel`.
    pub fn read(&self, rel: &str, name: &str) -> Result<Vec<u8>> {
        match &self.place {
            Place::Dir { root: dir, .. } => {
                let p = dir.join(rel).join(name);
                std::fs::read(&p).map_err(io(&p))
            }
            #[cfg(feature = "cluster")]
            Place::Object {
                url,
                store,
                prefix,
                runtime,
            } => runtime.block_on(async {
                let key = Self::key(prefix, &format!("{rel}/{name}"));
                get_bytes(store.as_ref(), url, &key).await
            }),
        }
    }

    /// The files under `rel` (relative names), none when it does not exist.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        match &self.place {
            Place::Dir { root: dir, .. } => {
                let root = dir.join(rel);
                let mut out = Vec::new();
                let mut todo = vec![root.clone()];
                while let Some(d) = todo.pop() {
                    let Ok(rd) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for e in rd.flatten() {
                        let p = e.path();
                        if p.is_dir() {
                            todo.push(p);
                        } else if let Ok(r) = p.strip_prefix(&root) {
                            out.push(r.to_string_lossy().into_owned());
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
            #[cfg(feature = "cluster")]
            Place::Object {
                url,
                store,
                prefix,
                runtime,
            } => runtime.block_on(async {
                let base = Self::key(prefix, rel);
                let strip = format!("{base}/");
                let mut out: Vec<String> = list_keys(store.as_ref(), url, &base)
                    .await?
                    .into_iter()
                    .filter_map(|k| k.as_ref().strip_prefix(&strip).map(String::from))
                    .collect();
                out.sort();
                Ok(out)
            }),
        }
    }

    /// Deletes `rel` and everything under it.
    pub fn delete(&self, rel: &str) -> Result<()> {
        match &self.place {
            Place::Dir { root: dir, .. } => remove_dir_if_exists(&dir.join(rel)),
            #[cfg(feature = "cluster")]
            Place::Object {
                url,
                store,
                prefix,
                runtime,
            } => runtime.block_on(async {
                for key in list_keys(store.as_ref(), url, &Self::key(prefix, rel)).await? {
                    match store.delete(&key).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(store_error(url, &format!("deleting {key}"), e)),
                    }
                }
                Ok(())
            }),
        }
    }

    /// Whether state `rel` holds all of `names`.
    pub fn holds(&self, rel: &str, names: &[&str]) -> Result<bool> {
        let have = self.list(rel)?;
        Ok(names.iter().all(|n| have.iter().any(|h| h == n)))
    }
}

/// S3 and in-memory stores through the `object_store` crate (the `cluster` feature).
#[cfg(feature = "cluster")]
mod object {
    use super::Place;
    use futures::TryStreamExt;
    use object_store::aws::AmazonS3Builder;
    use object_store::memory::InMemory;
    pub use object_store::path::Path as Key;
    use object_store::ObjectStore;
    use rolekd_core::{Error, Result};
    use std::sync::Arc;

    /// `s3://BUCKET/PREFIX` or `memory://`, holding the search `run` under `<prefix>/<run>/`.
    pub fn open(url: &str, run: &str, settings: &[(&str, String)]) -> Result<Place> {
        let bad = |why: String| Error::Invalid(format!("checkpoint store `{url}`: {why}"));
        let (store, base): (Arc<dyn ObjectStore>, String) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (_bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let mut b = AmazonS3Builder::from_env().with_url(url);
                for (name, value) in settings {
                    let key = name
                        .to_ascii_lowercase()
                        .parse()
                        .map_err(|e: object_store::Error| bad(e.to_string()))?;
                    b = b.with_config(key, value);
                }
                let s3 = b.build().map_err(|e| bad(e.to_string()))?;
                (Arc::new(s3), prefix.trim_matches('/').to_string())
            } else if url.starts_with("memory://") {
                (Arc::new(InMemory::new()), String::new())
            } else {
                return Err(bad(
                    "expected file:///PATH, s3://BUCKET/PREFIX or memory://".into(),
                ));
            };
        let prefix = [base.as_str(), run]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rolekd-ckpt-io")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start its I/O runtime: {e}")))?;
        Ok(Place::Object {
            url: url.to_string(),
            store,
            prefix,
            runtime,
        })
    }

    pub fn store_error(url: &str, what: &str, e: object_store::Error) -> Error {
        Error::Data(format!("checkpoint store {url}: {what}: {e}"))
    }

    /// One object's bytes.
    pub async fn get_bytes(store: &dyn ObjectStore, url: &str, key: &Key) -> Result<Vec<u8>> {
        let read = |e| store_error(url, &format!("reading {key}"), e);
        let bytes = store
            .get(key)
            .await
            .map_err(read)?
            .bytes()
            .await
            .map_err(read)?;
        Ok(bytes.to_vec())
    }

    /// Every key under `base`.
    pub async fn list_keys(store: &dyn ObjectStore, url: &str, base: &Key) -> Result<Vec<Key>> {
        let metas: Vec<_> = store
            .list(Some(base))
            .try_collect()
            .await
            .map_err(|e| store_error(url, &format!("listing {base}"), e))?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(store: &CheckpointStore) {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.bin"), b"alpha").unwrap();
        std::fs::create_dir_all(src.path().join("final")).unwrap();
        std::fs::write(src.path().join("final/b.json"), b"{}").unwrap();
        store
            .put(
                "checkpoints/0/epoch-2-x",
                src.path(),
                &["a.bin", "final/b.json"],
            )
            .unwrap();
        assert_eq!(
            store.list("checkpoints/0/epoch-2-x").unwrap(),
            vec!["a.bin".to_string(), "final/b.json".to_string()]
        );
        assert!(store.holds("checkpoints/0/epoch-2-x", &["a.bin"]).unwrap());
        assert!(!store.holds("checkpoints/0/epoch-2-y", &["a.bin"]).unwrap());
        // Create-only: a second write of the same state fails and leaves the first. (The
        // trainer replaces files by renaming new ones into place, as this does.)
        std::fs::remove_file(src.path().join("a.bin")).unwrap();
        std::fs::write(src.path().join("a.bin"), b"late").unwrap();
        let err = store
            .put("checkpoints/0/epoch-2-x", src.path(), &["a.bin"])
            .unwrap_err();
        assert!(err.to_string().contains("epoch-2-x"), "{err}");
        assert_eq!(
            store.read("checkpoints/0/epoch-2-x", "a.bin").unwrap(),
            b"alpha"
        );
        let dst = tempfile::tempdir().unwrap();
        store
            .get(
                "checkpoints/0/epoch-2-x",
                dst.path(),
                &["a.bin", "final/b.json"],
            )
            .unwrap();
        assert_eq!(std::fs::read(dst.path().join("a.bin")).unwrap(), b"alpha");
        assert_eq!(
            std::fs::read(dst.path().join("final/b.json")).unwrap(),
            b"{}"
        );
        store.delete("checkpoints").unwrap();
        assert!(store.list("checkpoints/0/epoch-2-x").unwrap().is_empty());
        assert!(store.read("checkpoints/0/epoch-2-x", "a.bin").is_err());
    }

    #[test]
    fn stage_directory_store_is_create_only_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        roundtrip(&CheckpointStore::in_dir(dir.path()));
    }

    #[test]
    fn file_url_store_is_create_only_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("ckpts").display());
        let store = CheckpointStore::open(&url, "run-a").unwrap();
        roundtrip(&store);
        // States of one run sit under its name.
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.bin"), b"x").unwrap();
        store
            .put("checkpoints/1/e", src.path(), &["a.bin"])
            .unwrap();
        assert!(dir
            .path()
            .join("ckpts/run-a/checkpoints/1/e/a.bin")
            .exists());
    }

    #[test]
    #[cfg(feature = "cluster")]
    fn s3_store_is_create_only_and_round_trips() {
        let Some(server) = rolekd_test_servers::s3::start_or_skip("s3_store_is_create_only") else {
            return;
        };
        let store =
            CheckpointStore::open_with(&server.url("ckpts"), "run-s3", &server.env()).unwrap();
        roundtrip(&store);
    }

    #[test]
    #[cfg(feature = "cluster")]
    fn memory_store_is_create_only_and_round_trips() {
        roundtrip(&CheckpointStore::open("memory://", "r").unwrap());
    }

    #[test]
    fn unknown_scheme_is_refused_with_the_expected_forms() {
        let err = CheckpointStore::open("gs://b/p", "r")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("expected file:///PATH, s3://BUCKET/PREFIX"),
            "{err}"
        );
        assert!(!is_checkpoint_url("/plain/path"));
        assert!(is_checkpoint_url("s3://b/p"));
    }
}
