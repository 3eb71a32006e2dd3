//! The run directory's lock: it keeps two runs out of one directory (the files in it are
//! written with `rolekd_core::files`).

use rolekd_core::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// An exclusive lock on a run directory, held for the life of the value.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `dir` (creating it), or explains who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(".lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // The standard library's advisory lock (flock on Linux), released when the file
        // closes, also when the process is killed.
        if let Err(e) = file.try_lock() {
            if let std::fs::TryLockError::Error(e) = e {
                return Err(Error::io(&path, e));
            }
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::Invalid(format!(
                "run directory {} is in use by another rolekd-run ({}); wait for it or choose --run-dir",
                dir.display(),
                holder.trim()
            )));
        }
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _a = RunLock::acquire(d.path()).unwrap();
        let err = RunLock::acquire(d.path()).err().unwrap().to_string();
        assert!(err.contains("in use by another rolekd-run"), "{err}");
    }
}
