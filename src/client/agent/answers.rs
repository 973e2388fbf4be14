//! How the agent talks HTTP: one client (timeouts, no redirects), every answer
//! read up to [`MAX_ANSWER_BYTES`], error answers turned into messages, and
//! `Retry-After` read.

use std::time::Duration;

use anyhow::{bail, Context};

use super::AgentConfig;

/// The most bytes of any answer (poll, keys, proofs, enrolment, report) the agent
/// reads; a longer one is refused without being held whole.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The agent's HTTP client: the configured timeout, no redirects followed.
pub fn http_client(config: &AgentConfig) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("patchwarden-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
}

/// Reads an answer's body up to [`MAX_ANSWER_BYTES`]; a longer one is refused as
/// soon as it announces or runs past that, without being read further.
async fn read_capped(mut response: reqwest::Response, what: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(length) = response.content_length().filter(|&l| l > MAX_ANSWER_BYTES as u64) {
        bail!("{what} announced {length} bytes, more than the {MAX_ANSWER_BYTES} an answer may have; refused unread");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.with_context(|| format!("reading {what}"))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            bail!("{what} ran past the {MAX_ANSWER_BYTES} bytes an answer may have; refused, not read further");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a JSON answer, or turns an error answer into a message naming `what`.
pub(super) async fn answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = response.status();
    let bytes = read_capped(response, what).await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<crate::api::ErrorResponse>(&bytes)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        bail!("{what} answered {status}: {message}");
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{what} answered JSON that is not understood"))
}
