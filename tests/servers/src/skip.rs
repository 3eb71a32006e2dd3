//! What a test does when its throwaway server (PostgreSQL, S3) cannot start: fail, unless
//! [`ALLOW_SKIP`] is set (for someone without PostgreSQL or PyPI; CI never sets it), so a
//! skipped store test can never pass as a green one by accident.

/// The environment variable that lets server tests skip instead of failing.
pub const ALLOW_SKIP: &str = "ROLEKD_ALLOW_SKIP_SERVERS";

/// `None` (with a loud message) when skipping is allowed; otherwise panics with the reason
/// the server did not start.
pub fn skip_or_fail<T>(server: &str, test: &str, e: impl std::fmt::Display) -> Option<T> {
    let allowed = std::env::var_os(ALLOW_SKIP).is_some_and(|v| !v.is_empty() && v != "0");
    decide(allowed, server, test, e)
}

fn decide<T>(allowed: bool, server: &str, test: &str, e: impl std::fmt::Display) -> Option<T> {
    if allowed {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPING the {server} part of `{test}` ({ALLOW_SKIP} is set): {e}");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
        return None;
    }
    panic!(
        "`{test}` needs a {server} server, which did not start: {e}\n\
         (set {ALLOW_SKIP}=1 to skip these tests on a machine without one)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_fails_unless_skipping_is_allowed() {
        let failed =
            std::panic::catch_unwind(|| decide::<()>(false, "PostgreSQL", "t", "no initdb"));
        let msg = failed.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("needs a PostgreSQL server") && msg.contains(ALLOW_SKIP),
            "{msg}"
        );
        assert_eq!(decide::<()>(true, "S3", "t", "no PyPI"), None);
    }
}
