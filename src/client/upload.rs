//! The client side of `patchwarden patch upload`: hash the file, create the patch (or
//! take an existing draft), send the file through the server's resumable upload with
//! a progress line on standard error, and when the connection drops ask the server
//! how much it holds and go on from there; publish on request.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::io::AsyncSeekExt;

use crate::api::patches::{BeginUpload, PatchDraft, PatchResponse, UploadResponse};
use crate::api::ErrorResponse;
use crate::domain::range::RangeInput;
use crate::domain::PatchState;

/// The patch a file is uploaded for.
pub enum Target {
    New {
        product: String,
        version: String,
        platform: Option<String>,
        /// Parsed from `>=A <B`, `>=A <=B` or `>=A` with [`parse_range`].
        applies_to: Vec<RangeInput>,
        fixes: Vec<String>,
    },
    /// An existing draft, by id.
    Existing(String),
}

pub struct UploadRequest {
    pub server: url::Url,
    pub token: String,
    pub target: Target,
    pub file: PathBuf,
    pub publish: bool,
    /// Attempts in a row without progress before giving up.
    pub attempts: u32,
}

/// Parses `>=A <B`, `>=A <=B` or `>=A`.
pub fn parse_range(text: &str) -> anyhow::Result<RangeInput> {
    let mut range = RangeInput {
        introduced: String::new(),
        fixed: None,
        last_affected: None,
    };
    for token in text.split_whitespace() {
        if let Some(v) = token.strip_prefix(">=") {
            range.introduced = v.to_owned();
        } else if let Some(v) = token.strip_prefix("<=") {
            range.last_affected = Some(v.to_owned());
        } else if let Some(v) = token.strip_prefix('<') {
            range.fixed = Some(v.to_owned());
        } else {
            bail!("--applies-to `{text}`: write `>=introduced <fixed`, `>=introduced <=last` or `>=introduced`");
        }
    }
    if range.introduced.is_empty() {
        bail!("--applies-to `{text}` has no `>=introduced`");
    }
    Ok(range)
}

fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Reads an error body of the API into one line.
async fn failure(response: reqwest::Response, what: &str) -> anyhow::Error {
    let status = response.status();
    match response.json::<ErrorResponse>().await {
        Ok(body) => anyhow::anyhow!("{what}: {status}: {}", body.error.message),
        Err(_) => anyhow::anyhow!("{what}: {status} (no error message)"),
    }
}

/// The server's side of an upload: its endpoint, how far it got, what the client sends.
struct Session<'a> {
    client: &'a reqwest::Client,
    token: &'a str,
    url: String,
    path: &'a Path,
    size: u64,
    sha256: &'a str,
}

/// How one attempt to send the rest of the file ended.
enum Sent {
    Stored,
    Progress,
    Failed(anyhow::Error),
}

impl Session<'_> {
    /// The offset the server holds, after starting an upload if there is none (or one
    /// of another size).
    async fn offset(&self) -> anyhow::Result<u64> {
        let response = self.client.get(&self.url).bearer_auth(self.token).send().await?;
        if response.status().is_success() {
            let state: UploadResponse = response.json().await?;
            // Only an unfinished upload of this very file is resumed.
            if u64::try_from(state.size).ok() == Some(self.size) && state.sha256.as_deref() == Some(self.sha256) {
                return u64::try_from(state.offset).context("the server sent a negative upload offset");
            }
        } else if response.status() != StatusCode::NOT_FOUND {
            return Err(failure(response, "asking for the upload offset").await);
        }
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(self.token)
            .json(&BeginUpload {
                size: self.size,
                sha256: Some(self.sha256.to_owned()),
            })
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(failure(response, "starting the upload").await);
        }
        Ok(0)
    }

    /// Sends the file from `offset` to its end in one request.
    async fn send_from(&self, offset: u64) -> anyhow::Result<Sent> {
        let mut file = tokio::fs::File::open(self.path)
            .await
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .with_context(|| format!("reading {}", self.path.display()))?;
        let (size, started) = (self.size, Instant::now());
        let mut sent = offset;
        let mut last = Instant::now();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
            if let Ok(bytes) = &chunk {
                sent += bytes.len() as u64;
                if last.elapsed() > Duration::from_millis(200) || sent == size {
                    progress(offset, sent, size, started);
                    last = Instant::now();
                }
            }
            chunk
        });
        let response = self
            .client
            .patch(&self.url)
            .bearer_auth(self.token)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset)
            .header("content-length", size - offset)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        eprintln!();
        let response = match response {
            Ok(response) => response,
            Err(err) => return Ok(Sent::Failed(err.into())),
        };
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(Sent::Stored);
        }
        if status == StatusCode::NO_CONTENT {
            // The server holds more than before but not the whole file.
            return Ok(Sent::Progress);
        }
        let error = failure(response, "uploading the file").await;
        if status.is_server_error() || status == StatusCode::CONFLICT || status == StatusCode::BAD_REQUEST {
            // The server is struggling, or its offset moved on: ask again and resume.
            Ok(Sent::Failed(error))
        } else {
            Err(error)
        }
    }
}

fn progress(from: u64, sent: u64, total: u64, started: Instant) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rate = mib(sent - from) / started.elapsed().as_secs_f64().max(0.001);
    let percent = if total == 0 {
        100.0
    } else {
        sent as f64 * 100.0 / total as f64
    };
    eprint!(
        "\ruploading {percent:5.1}%  {:.1}/{:.1} MiB  {rate:.1} MiB/s ",
        mib(sent),
        mib(total)
    );
    let _ = std::io::stderr().flush();
}

/// Sends the whole file through the server's resumable upload, resuming after each
/// failure from the offset the server reports, until `attempts` fail in a row.
async fn upload_file(session: &Session<'_>, attempts: u32) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let outcome = match session.offset().await {
            Ok(offset) => {
                if offset > 0 {
                    eprintln!("resuming at byte {offset} of {}", session.size);
                }
                session.send_from(offset).await?
            }
            Err(err) => Sent::Failed(err),
        };
        match outcome {
            Sent::Stored => return Ok(()),
            Sent::Progress => failures = 0,
            Sent::Failed(err) => {
                failures += 1;
                if failures >= attempts {
                    return Err(err.context(format!("uploading the file ({failures} attempts in a row failed)")));
                }
                eprintln!("attempt failed: {err:#}; resuming");
                // Back off before asking again: 1 s, 2 s, 4 s …
                tokio::time::sleep(Duration::from_secs(1 << (failures - 1).min(5))).await;
            }
        }
    }
}

async fn create_draft(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    target: &Target,
    filename: &str,
    sha256: &str,
) -> anyhow::Result<String> {
    let Target::New {
        product,
        version,
        platform,
        applies_to,
        fixes,
    } = target
    else {
        bail!("no draft to create");
    };
    let draft = PatchDraft {
        product: product.clone(),
        version: version.clone(),
        platform: platform.clone(),
        applies_to: applies_to.clone(),
        fixes: fixes.clone(),
        filename: filename.to_owned(),
        sha256: Some(sha256.to_owned()),
        rollback: false,
    };
    let response = client
        .post(format!("{base}/api/v1/patches"))
        .bearer_auth(token)
        .json(&draft)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(failure(response, "creating the patch").await);
    }
    let created: PatchResponse = response.json().await?;
    Ok(created.id)
}

/// Whether an existing draft already holds this file.
async fn draft_holds(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    sha256: &str,
) -> anyhow::Result<bool> {
    let response = client
        .get(format!("{base}/api/v1/patches/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(failure(response, "reading the patch").await);
    }
    let patch: PatchResponse = response.json().await?;
    if patch.state != PatchState::Draft {
        bail!("patch {id} is {}; its file can no longer change", patch.state);
    }
    Ok(patch.sha256.as_deref() == Some(sha256))
}

pub async fn run(request: UploadRequest) -> anyhow::Result<()> {
    let filename = request
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file has no usable name")?
        .to_owned();
    eprintln!("hashing {}", request.file.display());
    let path = request.file.clone();
    let (sha256, size) = tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .context("hashing")??;
    eprintln!("sha256 {sha256}, {size} bytes");
    if size == 0 {
        bail!("{} is empty", request.file.display());
    }
    let base = request.server.as_str().trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .build()?;
    let (id, held) = match &request.target {
        Target::Existing(id) => (
            id.clone(),
            draft_holds(&client, &base, &request.token, id, &sha256).await?,
        ),
        target => (
            create_draft(&client, &base, &request.token, target, &filename, &sha256).await?,
            false,
        ),
    };
    if held {
        eprintln!("patch {id} already holds this file");
    } else {
        let session = Session {
            client: &client,
            token: &request.token,
            url: format!("{base}/api/v1/patches/{id}/upload"),
            path: &request.file,
            size,
            sha256: &sha256,
        };
        upload_file(&session, request.attempts).await?;
    }
    if request.publish {
        let response = client
            .post(format!("{base}/api/v1/patches/{id}/publish"))
            .bearer_auth(&request.token)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(failure(response, "publishing").await);
        }
    }
    println!("{id}");
    eprintln!(
        "patch {id}: {filename}, sha256 {sha256}, {size} bytes{}",
        if request.publish {
            ", signed and published"
        } else {
            "; publish it with POST /api/v1/patches/{id}/publish"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_from_the_command_line() {
        let r = parse_range(">=6.3.0r12 <6.3.0r21").unwrap();
        assert_eq!(
            (r.introduced.as_str(), r.fixed.as_deref()),
            ("6.3.0r12", Some("6.3.0r21"))
        );
        let r = parse_range(">=21.4R1 <=21.4R3-S4").unwrap();
        assert_eq!(r.last_affected.as_deref(), Some("21.4R3-S4"));
        assert!(parse_range("6.3.0r12").is_err());
        assert!(parse_range("<6.3.0r21").is_err());
    }
}
