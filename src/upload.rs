//! The client side of `patchwarden patch upload`: hash the file, create the patch,
//! stream the file with a progress line on standard error, retry when the connection
//! drops (the server keeps nothing of a broken upload, so a retry starts afresh), and
//! publish on request.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::domain::range::RangeInput;

pub struct UploadRequest {
    pub server: url::Url,
    pub token: String,
    pub product: String,
    pub version: String,
    pub platform: Option<String>,
    /// Ranges written `>=A <B`, `>=A <=B` or `>=A`.
    pub applies_to: Vec<String>,
    pub fixes: Vec<String>,
    pub file: PathBuf,
    pub publish: bool,
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

fn hash_file(path: &PathBuf) -> anyhow::Result<(String, u64)> {
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
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or("no error message");
    anyhow::anyhow!("{what}: {status}: {message}")
}

fn progress(sent: u64, total: u64, started: Instant) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rate = mib(sent) / started.elapsed().as_secs_f64().max(0.001);
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

async fn send_file(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &PathBuf,
    size: u64,
) -> anyhow::Result<reqwest::Response> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let counter = sent.clone();
    let mut last = Instant::now();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let now_sent = counter.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
            if last.elapsed() > Duration::from_millis(200) || now_sent == size {
                progress(now_sent, size, started);
                last = Instant::now();
            }
        }
        chunk
    });
    let response = client
        .put(url)
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    eprintln!();
    Ok(response?)
}

pub async fn run(request: UploadRequest) -> anyhow::Result<()> {
    let ranges = request
        .applies_to
        .iter()
        .map(|r| parse_range(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
    let base = request.server.as_str().trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .build()?;
    let draft = json!({
        "product": request.product, "version": request.version, "platform": request.platform,
        "applies_to": ranges, "fixes": request.fixes, "filename": filename, "sha256": sha256,
    });
    let response = client
        .post(format!("{base}/api/v1/patches"))
        .bearer_auth(&request.token)
        .json(&draft)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(failure(response, "creating the patch").await);
    }
    let created: Value = response.json().await?;
    let id = created["id"]
        .as_str()
        .context("the server did not name the patch")?
        .to_owned();
    let upload_url = format!("{base}/api/v1/patches/{id}/file");
    let mut attempt = 1;
    loop {
        match send_file(&client, &upload_url, &request.token, &request.file, size).await {
            Ok(response) if response.status().is_success() => break,
            Ok(response) if response.status().is_server_error() && attempt < request.attempts => {
                eprintln!("attempt {attempt} failed with {}; retrying", response.status());
            }
            Ok(response) => return Err(failure(response, "uploading the file").await),
            Err(err) if attempt < request.attempts => eprintln!("attempt {attempt} failed: {err:#}; retrying"),
            Err(err) => return Err(err.context("uploading the file")),
        }
        // Back off before the next attempt: 1 s, 2 s, 4 s …
        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1).min(5))).await;
        attempt += 1;
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
