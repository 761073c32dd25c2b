//! ntfy (phones): a plain HTTP POST of the text to the topic URL, with the title,
//! priority, tags and click URL as headers. Blocking (ureq) on the blocking pool, one
//! at a time, behind the target's mailbox.

use std::time::Duration;

use base64::Engine;

use super::settings::secs;
use super::{Note, NtfyConfig, Reason, Shared, Target, TargetError};
use crate::tracker::auth::Secret;

pub(super) struct Ntfy {
    agent: ureq::Agent,
    config: NtfyConfig,
    /// Read from `token_env` when the host starts; never printed.
    token: Option<Secret>,
}

impl Ntfy {
    pub(super) fn new(config: &NtfyConfig, shared: &Shared) -> Self {
        let token = config.token_env.as_deref().and_then(|var| {
            let token = std::env::var(var).ok().filter(|t| !t.trim().is_empty());
            if token.is_none() {
                shared.notice(format!(
                    "ntfy: {var} is not set in the host's environment; publishing without a token"
                ));
            }
            token.map(Secret::new)
        });
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(secs(config.timeout_secs, Duration::from_secs(10))))
            .user_agent(concat!("canopy/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ntfy {
            agent,
            config: config.clone(),
            token,
        }
    }

    fn publish(
        agent: &ureq::Agent,
        url: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<(), TargetError> {
        let mut request = ureq::http::Request::builder().method("POST").uri(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(body)
            .map_err(|e| TargetError::Ntfy(format!("cannot build the request ({e})")))?;
        // The error names the URL at most; the token is only in a header.
        agent
            .run(request)
            .map(drop)
            .map_err(|e| TargetError::Ntfy(format!("{url}: {e}")))
    }
}

impl Target for Ntfy {
    async fn show(&mut self, note: &Note) -> Result<(), TargetError> {
        let reason = note.reason;
        let priority = self
            .config
            .priority
            .get(&reason)
            .copied()
            .unwrap_or_else(|| reason.ntfy_priority());
        let tags = self
            .config
            .tags
            .get(&reason)
            .map(|t| t.join(","))
            .unwrap_or_else(|| default_tag(reason).to_owned());
        let mut headers = vec![
            ("Title", header_text(&note.summary)),
            ("Priority", priority.to_string()),
            ("Tags", tags),
        ];
        if let Some(click) = &self.config.click {
            headers.push(("Click", click.replace("{name}", note.name())));
        }
        if let Some(token) = &self.token {
            headers.push(("Authorization", format!("Bearer {}", token.expose())));
        }
        let body = if note.body.is_empty() {
            note.summary.clone()
        } else {
            note.body.clone()
        };
        let (agent, url) = (self.agent.clone(), self.config.url.clone());
        tokio::task::spawn_blocking(move || Self::publish(&agent, &url, &headers, body))
            .await
            .map_err(|e| TargetError::Ntfy(e.to_string()))?
    }

    /// ntfy keeps what it published.
    async fn withdraw(&mut self, _session: &str) -> Result<(), TargetError> {
        Ok(())
    }
}

fn default_tag(reason: Reason) -> &'static str {
    match reason {
        Reason::WaitingPermission => "lock",
        Reason::WaitingInput => "question",
        Reason::Error => "warning",
        Reason::Finished => "white_check_mark",
        Reason::Exited => "x",
    }
}

/// Header values are ASCII; other text goes as an RFC 2047 encoded word, which ntfy
/// decodes.
fn header_text(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_owned()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_text_is_ascii() {
        assert_eq!(super::header_text("a wants Bash"), "a wants Bash");
        assert_eq!(super::header_text("é"), "=?UTF-8?B?w6k=?=");
    }
}
