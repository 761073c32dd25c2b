//! GET and POST (REST, GraphQL) with a timeout, bounded retries on rate limits, and one
//! [`TrackerError`] per failure, carrying what the API said about it. Blocking (ureq): a
//! few calls at session start (or for `canopy pr`) need no runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::auth::Auth;
use super::settings::Target;
use super::{Label, Said, TrackerError};

/// Retries after a rate-limit answer before giving up.
pub const MAX_RETRIES: u32 = 3;
/// The longest wait a rate limit may ask for and still be waited out; a longer one
/// fails at once, saying how long.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// First wait after a 429 that names none; doubles each retry.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// GitHub's advice for a secondary rate limit that names no wait.
pub const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// The largest response body read; issues are far smaller.
pub const MAX_BODY_BYTES: u64 = 8 << 20;

/// An HTTP client bound to one target's credentials and label.
pub struct Client {
    agent: ureq::Agent,
    auth: Option<Auth>,
    pub label: Label,
    /// For messages: the host part of the target's base.
    pub host: String,
    timeout: Duration,
}

/// A decoded answer and the next page, when the `Link` header names one.
#[derive(Debug)]
pub struct Page {
    pub json: serde_json::Value,
    pub next: Option<String>,
    /// GitLab's `X-Next-Page`: the number of the next page, empty on the last.
    pub next_page: Option<u64>,
    /// The HTTP status; not 2xx only for a GraphQL answer carrying `errors`.
    pub status: u16,
}

/// What a request sends.
#[derive(Clone, Copy)]
enum Body<'a> {
    None,
    /// A GraphQL document: errors come back in the body, whatever the status.
    GraphQl(&'a str),
    /// A REST POST.
    Json(&'a str),
}

impl Client {
    pub fn new(target: &Target, timeout: Duration) -> Self {
        Self::to(
            &target.base,
            target.auth.clone(),
            target.label.clone(),
            timeout,
        )
    }

    /// A client for the API at `base` (its host names it in messages).
    pub fn to(base: &str, auth: Option<Auth>, label: Label, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // The error bodies and rate-limit headers are needed.
            .http_status_as_error(false)
            // A transferred GitHub issue answers 301; keep credentials on that host only.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("canopy/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            auth,
            label,
            host: host_of(base).to_owned(),
            timeout,
        }
    }

    /// GET `url` as JSON, waiting out short rate limits up to [`MAX_RETRIES`] times.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Page, TrackerError> {
        self.send(url, headers, Body::None)
    }

    /// POST `json` to a REST endpoint; a refusal's error carries the API's own words.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        json: &serde_json::Value,
    ) -> Result<Page, TrackerError> {
        let mut all = headers.to_vec();
        all.push(("Content-Type", "application/json"));
        self.send(url, &all, Body::Json(&json.to_string()))
    }

    /// POST a GraphQL `query` with its `variables` to `url`. GraphQL servers explain
    /// failures in an `errors` list, whatever the status, so such an answer comes back
    /// as a [`Page`] for the caller to read; a `RATELIMITED` one is waited out first.
    pub fn graphql(
        &self,
        url: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<Page, TrackerError> {
        let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
        self.send(
            url,
            &[("Content-Type", "application/json")],
            Body::GraphQl(&body),
        )
    }

    fn send(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Page, TrackerError> {
        let mut attempt = 0;
        loop {
            let (method, payload) = match body {
                Body::None => ("GET", None),
                Body::GraphQl(b) | Body::Json(b) => ("POST", Some(b)),
            };
            let mut request = ureq::http::Request::builder()
                .method(method)
                .uri(url)
                .header("Accept", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(auth) = &self.auth {
                request = request.header("Authorization", auth.header().expose());
            }
            let sent = match payload {
                Some(b) => request.body(b.to_owned()).map(|r| self.agent.run(r)),
                None => request.body(()).map(|r| self.agent.run(r)),
            };
            let mut response = sent
                .map_err(|e| self.malformed(format!("cannot build the request ({e})")))?
                .map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            // GitHub and Jira say `x-ratelimit-*`, GitLab `ratelimit-*`, Linear
            // `x-ratelimit-requests-*` and `x-ratelimit-complexity-*` (its two budgets).
            let first = |names: &[&str]| names.iter().find_map(|n| header(n));
            let limits = Limits {
                retry_after: header("retry-after"),
                remaining: [
                    "x-ratelimit-remaining",
                    "ratelimit-remaining",
                    "x-ratelimit-requests-remaining",
                    "x-ratelimit-complexity-remaining",
                ]
                .iter()
                .find_map(|n| header(n).filter(|v| v.trim() == "0"))
                .or_else(|| first(&["x-ratelimit-remaining", "ratelimit-remaining"])),
                reset: first(&[
                    "x-ratelimit-reset",
                    "ratelimit-reset",
                    "x-ratelimit-requests-reset",
                    "x-ratelimit-complexity-reset",
                ]),
            };
            let next = header("link").as_deref().and_then(next_link);
            let next_page = header("x-next-page").and_then(|p| p.trim().parse().ok());
            let text = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY_BYTES)
                .read_to_string()
                .map_err(|e| self.transport(e))?;
            let graphql_errors = body_is_graphql(matches!(body, Body::GraphQl(_)), &text);
            if (200..300).contains(&status) || graphql_errors.is_some() {
                let json = match graphql_errors {
                    Some(json) => json,
                    None => serde_json::from_str(&text).map_err(|e| TrackerError::Malformed {
                        label: self.label.clone(),
                        host: self.host.clone(),
                        why: format!("not JSON ({e})"),
                    })?,
                };
                if !graphql_code(&json, "RATELIMITED") {
                    return Ok(Page {
                        json,
                        next,
                        next_page,
                        status,
                    });
                }
            }
            let Some(wait) = limits.wait(status, &text, attempt, unix_now()) else {
                return Err(self.status_error(status, api_said(&text)));
            };
            if attempt >= MAX_RETRIES || wait > MAX_RETRY_WAIT {
                return Err(TrackerError::RateLimited {
                    label: self.label.clone(),
                    host: self.host.clone(),
                    status,
                    wait: limits.asked(unix_now()),
                });
            }
            tracing::debug!(status, ?wait, attempt, "rate limited; waiting");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// `json` as the API's documented shape.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        json: serde_json::Value,
    ) -> Result<T, TrackerError> {
        serde_json::from_value(json).map_err(|e| self.malformed(e.to_string()))
    }

    pub fn malformed(&self, why: String) -> TrackerError {
        TrackerError::Malformed {
            label: self.label.clone(),
            host: self.host.clone(),
            why,
        }
    }

    /// The error for an HTTP `status` (or a GraphQL code standing for one), with what
    /// the API said about it.
    pub fn status_error(&self, status: u16, said: Said) -> TrackerError {
        let (label, host) = (self.label.clone(), self.host.clone());
        match status {
            401 => TrackerError::Unauthorized { label, host, said },
            403 => TrackerError::Forbidden { label, host, said },
            404 => TrackerError::NotFound { label, host, said },
            410 => TrackerError::Gone { label, host },
            _ => TrackerError::Status {
                label,
                host,
                status,
                said,
            },
        }
    }

    fn transport(&self, e: ureq::Error) -> TrackerError {
        let (label, host) = (self.label.clone(), self.host.clone());
        match e {
            ureq::Error::Timeout(_) => TrackerError::Timeout {
                label,
                host,
                timeout: self.timeout,
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                TrackerError::Timeout {
                    label,
                    host,
                    timeout: self.timeout,
                }
            }
            ureq::Error::BodyExceedsLimit(limit) => TrackerError::Malformed {
                label,
                host,
                why: format!("the answer is larger than {limit} bytes"),
            },
            ureq::Error::Protocol(e) => TrackerError::Malformed {
                label,
                host,
                why: format!("not HTTP ({e})"),
            },
            ureq::Error::HostNotFound => TrackerError::Unreachable {
                label,
                host,
                why: "host not found".into(),
            },
            ureq::Error::Io(io) => TrackerError::Unreachable {
                label,
                host,
                why: io.to_string(),
            },
            other => TrackerError::Unreachable {
                label,
                host,
                why: other.to_string(),
            },
        }
    }
}

/// The longest explanation of a refusal shown; bodies can be whole HTML pages.
const MAX_SAID: usize = 300;

/// What an error body says, on one line: GitHub's `{"message", "errors": [{message} |
/// {code, field} | "text"]}` ("Validation Failed: A pull request already exists for
/// o:b"), GitLab's `{"message": "text" | ["text"] | {field: ["text"]}}` or OAuth's
/// `{"error", "error_description"}`. Nothing for a body that is not such JSON.
pub fn api_said(body: &str) -> Said {
    use serde_json::Value;
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().filter_map(text).collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            Value::Object(map) => {
                if let Some(m) = map.get("message").and_then(text) {
                    return Some(m);
                }
                if let (Some(code), Some(field)) = (map.get("code"), map.get("field")) {
                    return Some(format!("{} {}", text(field)?, text(code)?));
                }
                let parts: Vec<String> = map
                    .iter()
                    .filter_map(|(k, v)| Some(format!("{k} {}", text(v)?)))
                    .collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            _ => None,
        }
    }
    let Ok(Value::Object(json)) = serde_json::from_str::<Value>(body) else {
        return Said(None);
    };
    let main = json
        .get("message")
        .or_else(|| json.get("error_description"))
        .or_else(|| json.get("error"))
        .and_then(text);
    let details = json.get("errors").and_then(text);
    let said = match (main, details) {
        (Some(m), Some(d)) => format!("{m}: {d}"),
        (Some(m), None) => m,
        (None, Some(d)) => d,
        (None, None) => return Said(None),
    };
    let line = said.split_whitespace().collect::<Vec<_>>().join(" ");
    Said(Some(match line.char_indices().nth(MAX_SAID) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }))
}

/// A GraphQL answer (to a POST) that carries an `errors` list, decoded.
fn body_is_graphql(posted: bool, text: &str) -> Option<serde_json::Value> {
    if !posted {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(text).ok()?;
    json.get("errors")
        .is_some_and(serde_json::Value::is_array)
        .then_some(json)
}

/// Whether a GraphQL answer has an error with `extensions.code == code`.
pub fn graphql_code(json: &serde_json::Value, code: &str) -> bool {
    json.get("errors")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|errors| {
            errors.iter().any(|e| {
                e.pointer("/extensions/code")
                    .and_then(serde_json::Value::as_str)
                    == Some(code)
            })
        })
}

/// The rate-limit headers of one answer.
#[derive(Debug, Default)]
struct Limits {
    /// `Retry-After`, seconds.
    retry_after: Option<String>,
    /// What is left of the budget: `"0"` when any budget the answer names is spent.
    remaining: Option<String>,
    /// When the budget refills: epoch seconds (GitHub, GitLab), epoch milliseconds
    /// (Linear) or ISO 8601 (Jira).
    reset: Option<String>,
}

impl Limits {
    /// How long the server asks to wait, if it says.
    fn asked(&self, now: u64) -> Option<Duration> {
        if let Some(secs) = self
            .retry_after
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
        {
            return Some(Duration::from_secs(secs));
        }
        let reset = self.reset.as_deref()?.trim();
        // Epoch milliseconds have 13 digits until the year 2286; seconds have 10.
        let at = reset
            .parse::<u64>()
            .ok()
            .map(|n| if n >= 100_000_000_000 { n / 1000 } else { n })
            .or_else(|| {
                time::OffsetDateTime::parse(reset, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
            })?;
        Some(Duration::from_secs(at.saturating_sub(now)))
    }

    /// The wait before retrying, or `None` when the status is no rate limit.
    fn wait(&self, status: u16, body: &str, attempt: u32, now: u64) -> Option<Duration> {
        let limited = match status {
            429 => true,
            // GitHub: a 403 is a rate limit when it says so; otherwise a refusal.
            403 => {
                self.remaining.as_deref() == Some("0")
                    || self.retry_after.is_some()
                    || body.to_ascii_lowercase().contains("rate limit")
            }
            503 => self.retry_after.is_some(),
            // Linear answers 400 with a `RATELIMITED` GraphQL error.
            _ => body.contains("\"RATELIMITED\""),
        };
        if !limited {
            return None;
        }
        if let Some(asked) = self.asked(now) {
            return Some(asked);
        }
        Some(if status == 403 {
            SECONDARY_LIMIT_WAIT
        } else {
            BACKOFF.saturating_mul(1 << attempt.min(8))
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `rel="next"` URL of a `Link` header, exactly as given.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// The host (and port) of a URL.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_apis_say_about_refusals() {
        let said = |body: &str| api_said(body).0;
        // GitHub (docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).
        assert_eq!(
            said(r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}],"documentation_url":"https://docs.github.com/rest","status":"422"}"#).as_deref(),
            Some("Validation Failed: A pull request already exists for o:b.")
        );
        assert_eq!(
            said(r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}"#).as_deref(),
            Some("Validation Failed: head invalid")
        );
        assert_eq!(
            said(r#"{"message":"Bad credentials"}"#).as_deref(),
            Some("Bad credentials")
        );
        // GitLab (docs.gitlab.com/api/rest/troubleshooting).
        assert_eq!(
            said(r#"{"message":["Another open merge request already exists for this source branch: !1"]}"#).as_deref(),
            Some("Another open merge request already exists for this source branch: !1")
        );
        assert_eq!(
            said(r#"{"message":{"title":["can't be blank"]}}"#).as_deref(),
            Some("title can't be blank")
        );
        assert_eq!(
            said(r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token."}"#).as_deref(),
            Some("The request requires higher privileges than provided by the access token.")
        );
        assert_eq!(said("<html>502</html>"), None);
        assert_eq!(
            said(&format!("{{\"message\":\"{}\"}}", "x".repeat(400))).map(|s| s.chars().count()),
            Some(MAX_SAID + 1)
        );
    }

    #[test]
    fn link_header() {
        let link = "<https://api.github.com/repositories/1/issues/2/comments?page=2>; rel=\"next\", <https://api.github.com/repositories/1/issues/2/comments?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?page=2")
        );
        assert_eq!(next_link("<http://x/?page=1>; rel=\"prev\""), None);
    }

    #[test]
    fn rate_limit_waits() {
        let now = 1_700_000_000;
        let none = Limits::default();
        // Plain refusals are not rate limits.
        assert_eq!(none.wait(403, "{\"message\":\"Forbidden\"}", 0, now), None);
        assert_eq!(none.wait(404, "", 0, now), None);
        assert_eq!(none.wait(503, "", 0, now), None);
        // 429 without a wait backs off exponentially.
        assert_eq!(none.wait(429, "", 0, now), Some(BACKOFF));
        assert_eq!(none.wait(429, "", 2, now), Some(BACKOFF * 4));
        // GitHub's primary limit: until the reset.
        let primary = Limits {
            remaining: Some("0".into()),
            reset: Some((now + 7).to_string()),
            ..Limits::default()
        };
        assert_eq!(primary.wait(403, "", 0, now), Some(Duration::from_secs(7)));
        // Secondary limit without Retry-After: a minute, which is over the cap.
        let secondary = none.wait(403, "You have exceeded a secondary rate limit", 0, now);
        assert_eq!(secondary, Some(SECONDARY_LIMIT_WAIT));
        assert!(SECONDARY_LIMIT_WAIT > MAX_RETRY_WAIT);
        // Retry-After wins; Jira's ISO reset is understood too.
        let after = Limits {
            retry_after: Some("2".into()),
            reset: Some((now + 100).to_string()),
            ..Limits::default()
        };
        assert_eq!(after.wait(429, "", 0, now), Some(Duration::from_secs(2)));
        let jira = Limits {
            reset: Some("2023-11-14T22:13:30Z".into()),
            ..Limits::default()
        };
        assert_eq!(jira.asked(now), Some(Duration::from_secs(10)));
        // Linear: a 400 whose GraphQL error says RATELIMITED, reset in epoch ms.
        let linear = Limits {
            remaining: Some("0".into()),
            reset: Some(((now + 4) * 1000).to_string()),
            ..Limits::default()
        };
        let body =
            r#"{"errors":[{"message":"Rate limit exceeded","extensions":{"code":"RATELIMITED"}}]}"#;
        assert_eq!(linear.wait(400, body, 0, now), Some(Duration::from_secs(4)));
        assert_eq!(none.wait(400, "{\"errors\":[]}", 0, now), None);
    }
}
