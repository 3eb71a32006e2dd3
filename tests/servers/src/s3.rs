//! A throwaway S3 server for tests: moto's server (PyPI `moto[server]`, pinned) on a free
//! loopback port, with one bucket, killed on drop. moto implements the conditional
//! `If-None-Match: *` put that create-only checkpoint writes rely on. Used by the search
//! crate's tests and the binary's.
//!
//! moto lives in its own venv, `$ROLEKD_CACHE/venv-moto-<version>` (default cache
//! `~/.cache/rolekd`), made on first use with `python3 -m venv` and pip; when that is
//! impossible (no python3, no PyPI) [`start_or_skip`] fails the test (skips it only when
//! `ROLEKD_ALLOW_SKIP_SERVERS` is set: [`crate::skip`]).

use rolekd_core::{Error, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the tests run against.
pub const MOTO_VERSION: &str = "5.2.5";
/// The bucket [`TestS3::start`] creates.
pub const BUCKET: &str = "rolekd-test";

fn fail(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("test S3 server: {what}"))
}

fn venv() -> PathBuf {
    let cache = std::env::var_os("ROLEKD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/rolekd")
        });
    cache.join(format!("venv-moto-{MOTO_VERSION}"))
}

/// The `moto_server` script, installed if missing.
fn moto_server() -> Result<PathBuf> {
    let venv = venv();
    let bin = venv.join("bin/moto_server");
    if bin.is_file() {
        return Ok(bin);
    }
    let ok = |c: &mut Command| c.stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)) {
        return Err(fail(format!("`python3 -m venv {}` failed", venv.display())));
    }
    let pip = venv.join("bin/pip");
    if !ok(Command::new(&pip).args([
        "install",
        "--quiet",
        &format!("moto[server]=={MOTO_VERSION}"),
    ])) {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(fail(format!(
            "`pip install moto[server]=={MOTO_VERSION}` failed (no PyPI?)"
        )));
    }
    Ok(bin)
}

/// A running server; killed on drop.
pub struct TestS3 {
    child: Child,
    port: u16,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    Ok(l.local_addr().map_err(fail)?.port())
}

/// One plain HTTP/1.1 request; returns the status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let code = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    Ok(code)
}

impl TestS3 {
    /// Starts moto on a free port and creates [`BUCKET`].
    pub fn start() -> Result<TestS3> {
        let bin = moto_server()?;
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", bin.display())))?;
        let server = TestS3 { child, port };
        let t0 = Instant::now();
        loop {
            match http(port, "PUT", &format!("/{BUCKET}")) {
                Ok(200) => return Ok(server),
                Ok(code) => return Err(fail(format!("creating the bucket: HTTP {code}"))),
                Err(_) if t0.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(fail(format!("not answering on port {port}: {e}"))),
            }
        }
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The variables a process needs to reach this server as its S3.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server; when it cannot, fails the test (or, with `ROLEKD_ALLOW_SKIP_SERVERS`
/// set, says why loudly and returns `None` so the test skips).
pub fn start_or_skip(test: &str) -> Option<TestS3> {
    match TestS3::start() {
        Ok(s) => Some(s),
        Err(e) => crate::skip::skip_or_fail("S3", test, e),
    }
}
