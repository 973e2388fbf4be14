//! A man in the middle between a device agent and the server: an HTTP relay on a
//! loopback port that passes each request on to the real server and can rewrite
//! the answer on its way back — a JSON body edited, a reply of its own, or a huge
//! body sent in pieces. It counts the requests it saw per path and the bytes of
//! patch downloads it relayed, so a test can tell what an agent fetched.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::endpoint::read_request;

/// Edits a JSON answer.
pub type Edit = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// What the relay does with the answers to one path.
#[derive(Clone)]
pub enum Rule {
    /// The server's JSON answer, edited.
    Edit(Edit),
    /// An answer of the relay's own; the request never reaches the server.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// `200` with `len` bytes of JSON-looking filler. With `announce`, the length is
    /// in `Content-Length`; without, the body is chunked. `pause` bytes are sent,
    /// then the relay waits for `release` before it sends the rest.
    Huge {
        len: usize,
        announce: bool,
        pause: usize,
        release: Arc<Notify>,
    },
}

#[derive(Default)]
struct Inner {
    rules: HashMap<String, Rule>,
    hits: HashMap<String, usize>,
}

/// A running relay; it stops when dropped.
pub struct Mitm {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<String>>,
    inner: Arc<Mutex<Inner>>,
    /// Bytes of patch downloads passed to the agent.
    downloaded: Arc<AtomicU64>,
    /// Bytes of huge bodies written before the agent stopped reading.
    huge_written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: Arc<Mutex<String>>,
    inner: Arc<Mutex<Inner>>,
    downloaded: Arc<AtomicU64>,
    huge_written: Arc<AtomicU64>,
    client: reqwest::Client,
}

impl Mitm {
    /// Relays to `upstream` (a base URL such as `http://127.0.0.1:1234`).
    pub async fn start(upstream: &str) -> Mitm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream.trim_end_matches('/').to_owned()));
        let inner = Arc::new(Mutex::new(Inner::default()));
        let downloaded = Arc::new(AtomicU64::new(0));
        let huge_written = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            upstream: upstream.clone(),
            inner: inner.clone(),
            downloaded: downloaded.clone(),
            huge_written: huge_written.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move { relay(stream, &shared).await });
            }
        });
        Mitm {
            addr,
            upstream,
            inner,
            downloaded,
            huge_written,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Relays to another server from now on (the server restarted elsewhere).
    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = upstream.trim_end_matches('/').to_owned();
    }

    /// Applies `rule` to answers of `path` (without its query) from now on.
    pub fn rule(&self, path: &str, rule: Rule) {
        self.inner.lock().unwrap().rules.insert(path.to_owned(), rule);
    }

    /// Edits the JSON answers of `path` with `edit` from now on.
    pub fn edit(&self, path: &str, edit: impl Fn(Value) -> Value + Send + Sync + 'static) {
        self.rule(path, Rule::Edit(Arc::new(edit)));
    }

    /// Passes the answers of `path` through unchanged from now on.
    pub fn pass(&self, path: &str) {
        self.inner.lock().unwrap().rules.remove(path);
    }

    /// Requests seen for `path` (without its query).
    pub fn hits(&self, path: &str) -> usize {
        self.inner.lock().unwrap().hits.get(path).copied().unwrap_or(0)
    }

    /// Requests seen for paths that start with `prefix`.
    pub fn hits_under(&self, prefix: &str) -> usize {
        let inner = self.inner.lock().unwrap();
        inner
            .hits
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Bytes of patch downloads the agent was sent.
    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::SeqCst)
    }

    /// Bytes of a huge body written before the agent hung up or the pause.
    pub fn huge_written(&self) -> u64 {
        self.huge_written.load(Ordering::SeqCst)
    }
}

async fn respond(stream: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} Relayed\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

async fn relay(mut stream: TcpStream, shared: &Shared) {
    let Some((method, target, request_headers, request_body)) = read_request(&mut stream).await else {
        return;
    };
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let rule = {
        let mut inner = shared.inner.lock().unwrap();
        *inner.hits.entry(path.clone()).or_default() += 1;
        inner.rules.get(&path).cloned()
    };
    match rule {
        Some(Rule::Reply { status, headers, body }) => {
            let mut headers = headers;
            headers.push(("Content-Type".into(), "application/json".into()));
            respond(&mut stream, status, &headers, body.as_bytes()).await;
            return;
        }
        Some(Rule::Huge {
            len,
            announce,
            pause,
            release,
        }) => {
            huge(&mut stream, shared, len, announce, pause, &release).await;
            return;
        }
        _ => {}
    }
    let upstream = shared.upstream.lock().unwrap().clone();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut forward = shared.client.request(method, format!("{upstream}{target}"));
    for (name, value) in &request_headers {
        if matches!(
            name.as_str(),
            "authorization" | "content-type" | "range" | "if-range" | "if-none-match" | "user-agent"
        ) {
            forward = forward.header(name.as_str(), value.as_str());
        }
    }
    let Ok(answer) = forward.body(request_body).send().await else {
        return;
    };
    let status = answer.status().as_u16();
    let mut headers: Vec<(String, String)> = answer
        .headers()
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "content-type" | "etag" | "content-range" | "accept-ranges" | "retry-after"
            )
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let Ok(mut body) = answer.bytes().await.map(|b| b.to_vec()) else {
        return;
    };
    if let Some(Rule::Edit(edit)) = rule {
        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
            body = serde_json::to_vec(&edit(value)).unwrap();
            headers.retain(|(n, _)| n != "etag");
        }
    }
    if path.ends_with("/download") {
        shared.downloaded.fetch_add(body.len() as u64, Ordering::SeqCst);
    }
    respond(&mut stream, status, &headers, &body).await;
}

async fn huge(stream: &mut TcpStream, shared: &Shared, len: usize, announce: bool, pause: usize, release: &Notify) {
    let framing = if announce {
        format!("Content-Length: {len}\r\n")
    } else {
        "Transfer-Encoding: chunked\r\n".to_owned()
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}Connection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let piece = vec![b' '; 64 * 1024];
    let mut sent = 0;
    let mut paused = false;
    while sent < len {
        if !paused && sent >= pause {
            paused = true;
            release.notified().await;
        }
        let n = piece.len().min(len - sent);
        let written = if announce {
            stream.write_all(&piece[..n]).await
        } else {
            let mut framed = format!("{n:x}\r\n").into_bytes();
            framed.extend_from_slice(&piece[..n]);
            framed.extend_from_slice(b"\r\n");
            stream.write_all(&framed).await
        };
        if written.is_err() {
            return;
        }
        sent += n;
        shared.huge_written.store(sent as u64, Ordering::SeqCst);
    }
    if !announce {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}
