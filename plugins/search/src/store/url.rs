//! Store URLs: which ones a search can open, and how they are shown.

/// `url` without its password, for logs, messages and files.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether `url` names a store [`super::open`] can open (checked before anything runs).
pub fn is_store_url(url: &str) -> bool {
    let url = url.trim();
    !url.is_empty()
        && (!url.contains("://")
            || ["postgres://", "postgresql://", "sqlite://", "file://"]
                .iter()
                .any(|p| url.starts_with(p)))
}
