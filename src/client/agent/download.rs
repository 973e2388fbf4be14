//! Downloading an offered patch into a partial file that survives a restart: when a
//! partial file and the validator of its first response are at hand, the transfer
//! goes on with `Range: bytes=N-` and `If-Range: <etag>`; a server that answers 200
//! instead (the file changed, or no ranges) starts it over.

use std::path::Path;

use reqwest::header::{AUTHORIZATION, ETAG, IF_RANGE, RANGE};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

/// How many bytes are gathered before they are written to the partial file.
const WRITE_BUFFER: usize = 256 * 1024;

/// A finished transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes already on disk that the server did not send again.
    pub resumed_from: u64,
    /// The file's length now.
    pub len: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server sent more than the offer's size: the file cannot be the one offered.
    #[error("the server sent more than the offered {0} bytes")]
    TooLong(u64),
    /// Worth trying again later: the network, the server, the disk.
    #[error("{0}")]
    Interrupted(String),
}

/// Fetches `url` into `part`, resuming when `etag` (the validator of an earlier
/// response for the same file) is known. `remember_etag` is called with the
/// validator of a fresh response before its body is written, so that a restart
/// can resume. Never writes more than `limit` bytes.
pub async fn fetch(
    http: &reqwest::Client,
    url: &url::Url,
    bearer: Option<&str>,
    part: &Path,
    etag: Option<&str>,
    limit: u64,
    mut remember_etag: impl FnMut(Option<String>) -> anyhow::Result<()>,
) -> Result<Fetched, DownloadError> {
    let interrupted = |what: &str, e: &dyn std::fmt::Display| DownloadError::Interrupted(format!("{what}: {e}"));
    let on_disk = match tokio::fs::metadata(part).await {
        Ok(meta) => meta.len(),
        Err(_) => 0,
    };
    let resume = match etag {
        Some(etag) if on_disk > 0 && on_disk < limit => Some((on_disk, etag)),
        _ => None,
    };
    if on_disk >= limit && on_disk > 0 && etag.is_some() {
        return Ok(Fetched {
            resumed_from: on_disk,
            len: on_disk,
        });
    }
    let mut request = http.get(url.clone());
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some((from, etag)) = resume {
        request = request.header(RANGE, format!("bytes={from}-")).header(IF_RANGE, etag);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| interrupted("requesting the patch", &e))?;
    let status = response.status();
    let (mut file, resumed_from) = match (status, resume) {
        (StatusCode::PARTIAL_CONTENT, Some((from, _))) => {
            let file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(part)
                .await
                .map_err(|e| interrupted("opening the partial file", &e))?;
            (file, from)
        }
        (StatusCode::OK, _) => {
            let etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            remember_etag(etag).map_err(|e| interrupted("saving the download state", &e))?;
            let file = tokio::fs::File::create(part)
                .await
                .map_err(|e| interrupted("creating the partial file", &e))?;
            (file, 0)
        }
        (status, _) => {
            return Err(DownloadError::Interrupted(format!(
                "the server answered the download with {status}"
            )))
        }
    };
    let mut len = resumed_from;
    let mut buffer = Vec::with_capacity(WRITE_BUFFER);
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| interrupted("receiving the patch", &e));
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                // Keep what arrived: the next attempt resumes after it.
                let _ = write_out(&mut file, &mut buffer).await;
                return Err(e);
            }
        };
        len += chunk.len() as u64;
        if len > limit {
            drop(file);
            let _ = tokio::fs::remove_file(part).await;
            return Err(DownloadError::TooLong(limit));
        }
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_BUFFER {
            write_out(&mut file, &mut buffer)
                .await
                .map_err(|e| interrupted("writing the partial file", &e))?;
        }
    }
    write_out(&mut file, &mut buffer)
        .await
        .map_err(|e| interrupted("writing the partial file", &e))?;
    file.sync_all()
        .await
        .map_err(|e| interrupted("syncing the partial file", &e))?;
    Ok(Fetched { resumed_from, len })
}

/// Writes what is buffered and hands it to the operating system before returning,
/// so the file's length on disk is what a restart resumes from.
async fn write_out(file: &mut tokio::fs::File, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    if !buffer.is_empty() {
        file.write_all(buffer).await?;
        buffer.clear();
    }
    file.flush().await
}
