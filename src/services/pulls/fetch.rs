//! One pull: `GET <pull_url>` with the device's bearer token when it has one,
//! expecting `200 {"version", "image_sha256"?}`. The answer is read as a stream up to
//! a size cap; transient failures are tried again after a wait that doubles, with
//! jitter; everything else fails at once with its reason.

use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use crate::config::PullSettings;
use crate::domain::PullFailure;
use crate::services::outbound::{read_capped, Failure, Outbound};

/// What a device said it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub version: String,
    pub image_sha256: Option<String>,
    /// What the device said of its view of the log: the age of its newest genuine
    /// tree head, and whether that makes it stale.
    pub head_age_s: Option<u64>,
    pub stale: Option<bool>,
}

#[derive(Deserialize)]
struct Answer {
    version: String,
    #[serde(default)]
    image_sha256: Option<String>,
    #[serde(default)]
    head_age_s: Option<u64>,
    #[serde(default)]
    stale: Option<bool>,
}

/// Reads a device's answer. A failure says where the answer went wrong, never what
/// it said: whoever sets a pull URL must not read other services' answers through it.
pub fn parse_answer(body: &[u8]) -> Result<Reading, Failure> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "a JSON object of another shape",
            serde_json::error::Category::Eof => "cut short",
            serde_json::error::Category::Io | serde_json::error::Category::Syntax => "not JSON",
        };
        Failure::new(
            PullFailure::BadJson,
            format!(
                "the answer is not {{\"version\", \"image_sha256\"?}} JSON: {what} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let version = answer.version.trim().to_owned();
    if version.is_empty() || version.len() > 64 {
        return Err(Failure::new(PullFailure::BadJson, "version must be 1 to 64 characters"));
    }
    let image_sha256 = answer
        .image_sha256
        .map(|h| {
            let h = h.trim().to_ascii_lowercase();
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(h)
            } else {
                Err(Failure::new(PullFailure::BadJson, "image_sha256 is not 64 hex digits"))
            }
        })
        .transpose()?;
    Ok(Reading {
        version,
        image_sha256,
        head_age_s: answer.head_age_s,
        stale: answer.stale,
    })
}

/// The header that names the scheduled time a pull serves (absent on pulls on
/// demand): a device that logs pulls can tell a retry or a late pull from a new one.
pub const DUE_HEADER: &str = "x-patchwarden-due";

/// One try; `None` when it could not be sent in time to finish within the lease.
async fn attempt(
    outbound: &Outbound,
    settings: &PullSettings,
    url: &Url,
    token: Option<&str>,
    due: Option<&str>,
    send_by: Instant,
) -> Option<Result<Reading, Failure>> {
    if let Err(why) = outbound.check_host(url) {
        return Some(Err(Failure::new(PullFailure::DeniedAddress, why)));
    }
    let _slot = outbound.host_slot(url).await;
    if Instant::now() > send_by {
        return None;
    }
    let mut request = outbound
        .client
        .get(url.clone())
        .timeout(settings.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(due) = due {
        request = request.header(DUE_HEADER, due);
    }
    let read = async {
        let response = request.send().await.map_err(|e| Failure::of(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(Failure {
                reason: PullFailure::Status,
                detail: format!("HTTP {} (redirects are not followed)", status.as_u16()),
                status: Some(status.as_u16()),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(Failure {
                reason: PullFailure::Status,
                detail: format!("HTTP {}", status.as_u16()),
                status: Some(status.as_u16()),
            });
        }
        let body = read_capped(response, settings.max_response_bytes)
            .await?
            .ok_or_else(|| {
                Failure::new(
                    PullFailure::TooLarge,
                    format!("the answer is longer than {} bytes", settings.max_response_bytes),
                )
            })?;
        parse_answer(&body)
    };
    // The client's timeout covers the body too; this bounds connecting as well.
    Some(
        match tokio::time::timeout(settings.timeout + settings.connect_timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(PullFailure::Timeout, "no complete answer in time")),
        },
    )
}

/// The latest moment a try may start so that it ends within a lease that runs
/// out at `lease_end`.
pub fn send_by(settings: &PullSettings, lease_end: Instant) -> Instant {
    lease_end
        .checked_sub(settings.timeout + settings.connect_timeout)
        .unwrap_or(lease_end)
}

/// Pulls `url` (for the scheduled time `due`, when it is a scheduled pull), trying
/// again after transient failures. A try starts only while it can end before the
/// claim's lease runs out at `lease_end` (after which another instance may pull the
/// device); `None` when not even the first could.
pub async fn pull(
    outbound: &Outbound,
    settings: &PullSettings,
    url: &Url,
    token: Option<&str>,
    due: Option<chrono::NaiveDateTime>,
    lease_end: Instant,
) -> Option<Result<Reading, Failure>> {
    let due = due.map(|d| d.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let send_by = send_by(settings, lease_end);
    let mut tries = 0;
    loop {
        match attempt(outbound, settings, url, token, due.as_deref(), send_by).await? {
            Err(failure) if failure.transient() && tries < settings.retries && Instant::now() < send_by => {
                let wait =
                    settings.retry_delay.as_secs_f64() * f64::from(1u32 << tries.min(16)) * crate::random::spread();
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                tries += 1;
            }
            Err(mut failure) => {
                if tries > 0 {
                    failure.detail = format!("{} (after {} tries)", failure.detail, tries + 1);
                }
                return Some(Err(failure));
            }
            Ok(reading) => return Some(Ok(reading)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked() {
        assert_eq!(
            parse_answer(br#"{"version": " 6.3.0r21 ", "extra": 1}"#).unwrap(),
            Reading {
                version: "6.3.0r21".into(),
                image_sha256: None,
                head_age_s: None,
                stale: None,
            }
        );
        let stale = parse_answer(br#"{"version": "1", "head_age_s": 9000, "stale": true}"#).unwrap();
        assert_eq!((stale.head_age_s, stale.stale), (Some(9000), Some(true)));
        let upper = "AB".repeat(32);
        assert_eq!(
            parse_answer(format!(r#"{{"version": "1", "image_sha256": "{upper}"}}"#).as_bytes())
                .unwrap()
                .image_sha256,
            Some(upper.to_lowercase())
        );
        assert_eq!(parse_answer(b"<html>").unwrap_err().reason, PullFailure::BadJson);
        assert_eq!(
            parse_answer(br#"{"version": ""}"#).unwrap_err().reason,
            PullFailure::BadJson
        );
        assert_eq!(
            parse_answer(br#"{"version": "1", "image_sha256": "nothex"}"#)
                .unwrap_err()
                .reason,
            PullFailure::BadJson
        );
    }
}
