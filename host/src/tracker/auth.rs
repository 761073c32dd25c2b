//! Credentials. A token is held as a [`Secret`], whose `Debug` and `Display` print
//! `***`, so no log line, error or format string can show it by accident; only
//! [`Auth::header`] reads it, to build the `Authorization` header.

use std::fmt;
use std::process::{Command, Stdio};

/// A token. The only way to the text is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Self {
        Secret(token.into().trim().to_owned())
    }

    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// GitHub tokens, Jira Data Center personal access tokens, YouTrack permanent tokens.
    Bearer(Secret),
    /// Jira Cloud: account email and API token.
    Basic { user: String, token: Secret },
}

impl Auth {
    /// The `Authorization` header's value, itself a secret.
    pub fn header(&self) -> Secret {
        match self {
            Auth::Bearer(token) => Secret(format!("Bearer {}", token.expose())),
            Auth::Basic { user, token } => Secret(format!(
                "Basic {}",
                base64(format!("{user}:{}", token.expose()).as_bytes())
            )),
        }
    }
}

/// `gh auth token --hostname HOST`: the token the GitHub CLI keeps for `host`, if `gh`
/// is installed and logged in there (it exits 4 otherwise).
pub fn gh_token(host: &str) -> Option<String> {
    let out = Command::new("gh")
        .args(["auth", "token", "--hostname", host])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let token = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !token.is_empty()).then_some(token)
}

/// Standard base64 with padding (RFC 4648), for Basic auth.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = Auth::Basic {
            user: "me@x.test".into(),
            token: Secret::new("s3cret\n"),
        };
        let shown = format!("{auth:?} {} {:?}", auth.header(), auth.header());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            auth.header().expose(),
            format!("Basic {}", base64(b"me@x.test:s3cret"))
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }
}
