//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, started
//! with `pg_ctl` on a free loopback port (its socket in the same directory), one database
//! created, stopped and deleted on drop. Used by the search crate's tests and the binary's.
//!
//! `initdb` refuses to run as root. As root the server runs as the system user
//! `rolekd-test` (created with `useradd` when missing) through `runuser`: a dedicated
//! account owns nothing else, so a test can never touch another cluster's files.
//!
//! When no `initdb` is found (`PATH`, then `/usr/lib/postgresql/*/bin`), [`TestServer::start`]
//! installs Debian's `postgresql` package non-interactively if it may (root or password-less
//! sudo); when that is impossible it returns an error, and [`start_or_skip`] fails the test
//! (skips it only when `ROLEKD_ALLOW_SKIP_SERVERS` is set: [`crate::skip`]).

use rolekd_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The unprivileged account a root test process runs the server as.
pub const TEST_USER: &str = "rolekd-test";

/// A running server; stopped on drop.
pub struct TestServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    user: Option<&'static str>,
    port: u16,
}

fn fail(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("test PostgreSQL server: {what}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding `initdb`, `pg_ctl` and `createdb`.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse(); // the newest version first
                      // Debian's pg_ctl wrappers in /usr/bin lack initdb; the versioned directory has all.
    debian
        .into_iter()
        .chain(on_path)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn install() -> Result<()> {
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    for args in [
        &["apt-get", "update", "-qq"][..],
        &["apt-get", "install", "-y", "-qq", "postgresql"][..],
    ] {
        let mut cmd = Command::new(sudo.first().copied().unwrap_or(args[0]));
        cmd.args(sudo.iter().skip(1))
            .args(if sudo.is_empty() { &args[1..] } else { args })
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null());
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            return Err(fail(format!(
                "no initdb found and `{}` failed",
                args.join(" ")
            )));
        }
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    Ok(l.local_addr().map_err(fail)?.port())
}

fn ensure_user() -> Result<()> {
    let exists = Command::new("id")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        // Two test binaries may race to create it; only the outcome matters.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .status();
        let ok = Command::new("id")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(fail(format!("cannot create the user `{TEST_USER}`")));
        }
    }
    Ok(())
}

impl TestServer {
    /// Starts a server with a database `rolekd` (user `postgres`, trust authentication).
    pub fn start() -> Result<TestServer> {
        let bin = match find_bin() {
            Some(b) => b,
            None => {
                install()?;
                find_bin().ok_or_else(|| fail("postgresql installed but no initdb found"))?
            }
        };
        let user = if is_root() {
            ensure_user()?;
            Some(TEST_USER)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("rolekd-pg-")
            .tempdir()
            .map_err(fail)?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(fail)?;
        if let Some(u) = user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(fail)?;
            let ok = Command::new("chown")
                .args(["-R", &format!("{u}:"), &dir.path().to_string_lossy()])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(fail("chown of the data directory failed"));
            }
        }
        let mut server = TestServer {
            bin,
            dir,
            user,
            port: 0,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        // A port taken between the probe and the start: try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                server.dir.path().display()
            );
            let log = server.dir.path().join("server.log");
            match server.run(
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-o",
                    &opts,
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "start",
                ],
            ) {
                Ok(()) => {
                    server.port = port;
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        server.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                "rolekd",
            ],
        )?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/rolekd`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/rolekd", self.port)
    }

    /// The server's directory (data, socket, `server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = match self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("{}: {e}", exe.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.dir.path().join("data");
            let _ = self.run(
                "pg_ctl",
                &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"],
            );
        }
    }
}

/// Starts a server; when it cannot, fails the test (or, with `ROLEKD_ALLOW_SKIP_SERVERS`
/// set, says why loudly and returns `None` so the test skips).
pub fn start_or_skip(test: &str) -> Option<TestServer> {
    match TestServer::start() {
        Ok(s) => Some(s),
        Err(e) => crate::skip::skip_or_fail("PostgreSQL", test, e),
    }
}
