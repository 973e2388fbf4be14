//! The pull endpoint a device serves so that the server's scheduled pulls learn
//! what it really runs: `GET <path>` with `Authorization: Bearer <pull token>`
//! answers `200 {"version", "image_sha256"?}`. One listener can serve many devices
//! (the simulated fleet), each on its own path.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::api::device::Pulled;

/// What answers on a path.
pub enum Answer {
    /// The device's reading, and the token a pull must present (if any).
    Device { reading: Pulled, token: Option<Arc<str>> },
    /// Any JSON the listener wants to show (the fleet's statistics).
    Json(String),
    /// The device does not answer at all: the connection is closed.
    Silent,
}

/// Decides what each path answers.
pub trait Directory: Send + Sync + 'static {
    fn lookup(&self, path: &str) -> Option<Answer>;
}

/// Serves pulls on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, directory: Arc<dyn Directory>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let directory = directory.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let directory = directory.clone();
                async move { Ok::<_, Infallible>(answer(&*directory, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(directory: &dyn Directory, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    };
    let error = |status: StatusCode, code: &str, message: &str| {
        respond(
            status,
            serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
        )
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "pulls are GET");
    }
    match directory.lookup(request.uri().path()) {
        None => error(StatusCode::NOT_FOUND, "not_found", "no device answers here"),
        Some(Answer::Json(body)) => respond(StatusCode::OK, body),
        Some(Answer::Silent) => {
            // A device that has gone quiet: no answer that the server could read.
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            response
        }
        Some(Answer::Device { reading, token }) => {
            if let Some(expected) = token {
                let presented = request
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "the pull token is not valid",
                    );
                }
            }
            respond(
                StatusCode::OK,
                serde_json::to_string(&reading).unwrap_or_else(|_| "{}".into()),
            )
        }
    }
}
