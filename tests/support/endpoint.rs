//! A scripted HTTP endpoint on a loopback address, for what the server reaches out
//! to: simulated devices answering pulls and webhook receivers. Each path has a
//! script of replies (the last one repeats); every request is recorded with its
//! headers and body, so tests count what arrived and check what was sent.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the endpoint answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status and a JSON body.
    Json(u16, String),
    /// A status with a `Location` header.
    Redirect(u16, String),
    /// `200` with a body that is not JSON.
    Text(String),
    /// `200` with these bytes as an octet stream.
    Bytes(Vec<u8>),
    /// `200`, headers announcing a short body, then one byte of it every interval.
    Drip(Duration),
    /// Accepts the request and never answers.
    Hang,
    /// Answers as the inner reply after a wait.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    pub fn version(version: &str, image: Option<&str>) -> Reply {
        let body = match image {
            Some(image) => serde_json::json!({"version": version, "image_sha256": image}),
            None => serde_json::json!({"version": version}),
        };
        Reply::Json(200, body.to_string())
    }

    pub fn status(status: u16) -> Reply {
        Reply::Json(status, r#"{"error":"scripted"}"#.into())
    }
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    /// Seconds since the Unix epoch, for requests that belong to a wall-clock slot.
    pub wall: f64,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Vec<Reply>>,
    served: HashMap<String, usize>,
    requests: Vec<Request>,
}

/// A running endpoint; it stops when dropped.
pub struct Endpoint {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// Counts the requests that arrived, so a test can wait for one without polling.
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    /// Listens on `ip` (a loopback address) on a free port.
    pub async fn start(ip: &str) -> Endpoint {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind the endpoint");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = inner.clone();
        let arrived = Arc::new(tokio::sync::watch::Sender::new(0));
        let counter = arrived.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: wait for some to close.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = shared.clone();
                let counter = counter.clone();
                tokio::spawn(async move { serve(stream, shared, counter).await });
            }
        });
        Endpoint {
            addr,
            inner,
            arrived,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `path` with `replies` in turn, the last one from then on.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        let mut inner = self.inner.lock().unwrap();
        inner.scripts.insert(path.to_owned(), replies);
        inner.served.insert(path.to_owned(), 0);
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all_requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// Waits until `path` has had `count` requests, woken by each arrival; fails
    /// the test, naming `what`, when that takes longer than `limit`.
    pub async fn wait_hits(&self, path: &str, count: usize, limit: Duration, what: &str) {
        let mut arrivals = self.arrived.subscribe();
        let reached = tokio::time::timeout(limit, arrivals.wait_for(|_| self.hits(path) >= count)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "{what}: {} of {count} requests to {path} within {limit:?}",
            self.hits(path)
        );
    }
}

/// Reads one HTTP/1.1 request: method, target, headers (names in lower case), body.
pub async fn read_request(stream: &mut TcpStream) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Mutex<Inner>>, arrived: Arc<tokio::sync::watch::Sender<usize>>) {
    let Some((method, path, headers, body)) = read_request(&mut stream).await else {
        return;
    };
    let reply = {
        let mut inner = shared.lock().unwrap();
        inner.requests.push(Request {
            at: Instant::now(),
            wall: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            method,
            path: path.clone(),
            headers,
            body,
        });
        let served = inner.served.get(&path).copied().unwrap_or(0);
        let reply = inner
            .scripts
            .get(&path)
            .and_then(|s| s.get(served).or(s.last()).cloned())
            .unwrap_or_else(|| Reply::status(404));
        inner.served.insert(path, served + 1);
        reply
    };
    arrived.send_modify(|n| *n += 1);
    let respond = |status: u16, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            reason(status),
            body.len()
        )
    };
    let reply = match reply {
        Reply::Delayed(wait, inner) => {
            tokio::time::sleep(wait).await;
            *inner
        }
        other => other,
    };
    match reply {
        Reply::Delayed(..) => {}
        Reply::Json(status, body) => {
            let _ = stream.write_all(respond(status, "", &body).as_bytes()).await;
        }
        Reply::Text(body) => {
            let _ = stream.write_all(respond(200, "", &body).as_bytes()).await;
        }
        Reply::Bytes(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        Reply::Redirect(status, location) => {
            let _ = stream
                .write_all(respond(status, &format!("Location: {location}\r\n"), "").as_bytes())
                .await;
        }
        Reply::Drip(every) => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"version\": \"";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(every).await;
                if stream.write_all(b"1").await.is_err() {
                    return;
                }
            }
        }
        Reply::Hang => {
            let mut sink = [0u8; 64];
            while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        }
    }
    let _ = stream.shutdown().await;
}
