//! Approvals of repository files, the way `direnv allow` works: `canopy trust` records
//! the SHA-256 of the repository's path and the file's exact bytes in the state dir
//! (never in the repository); any change to the file, or a move of the repository,
//! makes it untrusted again.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where approvals live: `<state dir>/trust/<digest>`.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trust")
}

/// The digest of a file's bytes as found in the repository at `repo`.
fn digest(repo: &Path, content: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(repo.as_os_str().as_encoded_bytes());
    hash.update([0]);
    hash.update(content);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the user approved exactly these bytes for the repository at `repo`.
pub fn is_trusted(trust_dir: &Path, repo: &Path, content: &[u8]) -> bool {
    trust_dir.join(digest(repo, content)).is_file()
}

/// Record the approval; the file holds the repository's path, for people reading it.
pub fn approve(trust_dir: &Path, repo: &Path, content: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(trust_dir)?;
    let path = trust_dir.join(digest(repo, content));
    std::fs::write(&path, format!("{}\n", repo.display()))?;
    Ok(path)
}

/// Withdraw an approval of these bytes; `false` when there was none.
pub fn revoke(trust_dir: &Path, repo: &Path, content: &[u8]) -> std::io::Result<bool> {
    match std::fs::remove_file(trust_dir.join(digest(repo, content))) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_is_for_these_bytes_in_this_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (Path::new("/r/a"), Path::new("/r/b"));
        assert!(!is_trusted(dir.path(), a, b"x"));
        approve(dir.path(), a, b"x").expect("approve");
        assert!(is_trusted(dir.path(), a, b"x"));
        assert!(!is_trusted(dir.path(), a, b"x "));
        assert!(!is_trusted(dir.path(), b, b"x"));
        assert!(revoke(dir.path(), a, b"x").expect("revoke"));
        assert!(!is_trusted(dir.path(), a, b"x"));
    }
}
