//! Builds the HTTP server: middleware (request metrics and logs, security headers),
//! extractor limits, and the route table, bound to a listener.

use std::net::TcpListener;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, DefaultHeaders, Next};
use actix_web::{web, App, HttpServer};

use crate::auth;
use crate::config::Config;
use crate::http::extract;
use crate::routes;
use crate::state::AppState;

/// Starts serving `state` on `listener`; the returned server runs until stopped.
pub fn serve(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    let workers = state.config.workers;
    let limit = state.config.max_json_body_bytes;
    let https = state.config.public_url.scheme() == "https";
    let server = HttpServer::new(move || {
        let (json, form, path, query) = extract::configs(limit);
        let mut headers = DefaultHeaders::new()
            .add(("x-content-type-options", "nosniff"))
            .add(("x-frame-options", "DENY"))
            .add(("referrer-policy", "same-origin"))
            .add((
                "content-security-policy",
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ));
        if https {
            // Browsers that reached us over https keep to it for a year.
            headers = headers.add(("strict-transport-security", "max-age=31536000; includeSubDomains"));
        }
        App::new()
            .app_data(state.clone())
            .app_data(json)
            .app_data(form)
            .app_data(path)
            .app_data(query)
            .app_data(web::PayloadConfig::new(limit))
            .wrap(headers)
            .wrap(from_fn(auth::authenticate_first))
            .wrap(from_fn(observe))
            .configure(routes::configure)
    })
    .workers(workers)
    // What a connection buffers of a response before writing it out: with a thousand
    // downloads at once, each connection's buffer (and the chunk poured into it) is
    // most of the server's memory.
    .h1_write_buffer_size(8 * 1024)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Warns when the server listens beyond loopback while its public URL is plain
/// `http`: passwords, session cookies and tokens would cross the network in clear.
/// Returns whether it warned.
pub fn warn_about_exposure(config: &Config) -> bool {
    let exposed = !config.bind.ip().is_loopback() && config.public_url.scheme() == "http";
    if exposed {
        tracing::warn!(
            bind = %config.bind,
            public_url = %config.public_url,
            "listening beyond loopback with an http:// public_url: logins and tokens travel unencrypted; \
             put a TLS proxy in front and set public_url to its https:// address"
        );
    }
    exposed
}

/// Records every request in the metrics and the log: method, route pattern (never
/// the raw path or query, which may carry identifiers), status and latency.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state.metrics.observe(&route, method.as_str(), status, elapsed);
    }
    tracing::info!(
        http.method = %method,
        http.route = %route,
        http.status = status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    result
}
