//! Credentials. A token is held as a [`Secret`], whose `Debug` and `Display` print
//! `***`, so no log line, error or format string can show it by accident; only
//! [`Auth::header`] reads it, to build the `Authorization` header.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `gh` or `glab` may take to hand over a token (`glab auth status` also asks
/// its instance who the token belongs to, which can hang on a dead network).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Linear personal API keys, sent bare: Linear refuses them with a `Bearer` prefix
    /// (which it keeps for OAuth tokens).
    Plain(Secret),
}

impl Auth {
    /// The `Authorization` header's value, itself a secret.
    pub fn header(&self) -> Secret {
        match self {
            Auth::Bearer(token) => Secret(format!("Bearer {}", token.expose())),
            Auth::Plain(token) => token.clone(),
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
    let out = run_cli("gh", &["auth", "token", "--hostname", host])?;
    let token = out.stdout.trim().to_owned();
    (out.success && !token.is_empty()).then_some(token)
}

/// The token `glab` keeps for `host`, from `glab auth status --hostname HOST
/// --show-token`. glab has no command that prints only the token.
pub fn glab_token(host: &str) -> Option<String> {
    let out = run_cli(
        "glab",
        &["auth", "status", "--hostname", host, "--show-token"],
    )?;
    // glab exits non-zero when its check of the token against the instance fails (for
    // instance offline), yet still prints the token: the instance itself will judge it.
    parse_glab_status(&out.stderr).or_else(|| parse_glab_status(&out.stdout))
}

/// The token in glab's status text, which it prints to stderr as
/// `HOST` then indented lines such as `  ✓ Token: glpat-…` (`**…` when hidden).
fn parse_glab_status(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let token = line.strip_prefix("Token:")?.trim();
        (!token.is_empty() && !token.chars().all(|c| c == '*') && !token.contains(' '))
            .then(|| token.to_owned())
    })
}

/// What a credential helper printed.
struct CliOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Run `program` when it is on the PATH, for at most [`CLI_TIMEOUT`]; `None` when it is
/// missing, fails to start or takes too long (it is then killed).
fn run_cli(program: &str, args: &[&str]) -> Option<CliOutput> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Read both pipes on threads so a chatty helper cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                tracing::debug!(program, "credential helper took too long; killed");
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    Some(CliOutput {
        success: status.success(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
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
    fn glab_status_text() {
        // As glab prints it (commands/auth/status in gitlab-org/cli), to stderr.
        let shown = "gitlab.acme.com\n  ✓ Logged in to gitlab.acme.com as jdoe (/home/j/.config/glab-cli/config.yml)\n  ✓ Git operations for gitlab.acme.com configured to use ssh protocol.\n  ✓ Token: glpat-abc123\n";
        assert_eq!(parse_glab_status(shown).as_deref(), Some("glpat-abc123"));
        let hidden = "gitlab.com\n  ✓ Token: **************************\n";
        assert_eq!(parse_glab_status(hidden), None);
        let none =
            "gl.io\n  x gl.io: API call failed\n  ! No token provided in configuration file.\n";
        assert_eq!(parse_glab_status(none), None);
        let plain = Auth::Plain(Secret::new("lin_api_x"));
        assert_eq!(plain.header().expose(), "lin_api_x");
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
