//! A Chromium-family browser for `canopy open`: `$CANOPY_BROWSER` (a command line,
//! split as a shell would), else the first of the usual names on `PATH`. Every one of
//! them takes `--user-data-dir`, which is what keeps sessions' cookies apart.

use std::ffi::OsString;
use std::path::Path;

/// Names tried in order when `$CANOPY_BROWSER` is not set.
const CANDIDATES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "brave-browser",
    "brave",
    "microsoft-edge",
    "vivaldi",
];

/// The browser's command line (program first), or `None` when none is found.
pub fn find(configured: Option<&str>, path: Option<OsString>, cwd: &Path) -> Option<Vec<String>> {
    if let Some(line) = configured.filter(|l| !l.trim().is_empty()) {
        return shell_words::split(line).ok().filter(|w| !w.is_empty());
    }
    CANDIDATES.iter().find_map(|name| {
        which::which_in(name, path.clone(), cwd)
            .ok()
            .map(|p| vec![p.display().to_string()])
    })
}

/// The arguments that open `url` in the profile at `profile`.
pub fn args(profile: &str, url: &str) -> Vec<String> {
    vec![
        format!("--user-data-dir={profile}"),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        url.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_browser_wins_and_is_split() {
        assert_eq!(
            find(Some("chromium --headless"), None, Path::new("/")),
            Some(vec!["chromium".into(), "--headless".into()])
        );
        assert_eq!(
            find(None, Some("/nonexistent".into()), Path::new("/")),
            None
        );
    }
}
