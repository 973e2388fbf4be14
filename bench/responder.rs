//! Simulated devices for the pull benchmark: answers `GET /d/{n}` with the JSON a
//! device gives a pull, on many loopback addresses at once (so the server's
//! per-host limit applies as it would across a real fleet), and counts what it
//! served: `GET /stats` on any address answers `{"served": N}`.
//!
//!   pull-responder PORT FIRST_ADDRESS COUNT      e.g. 18090 127.0.1.1 250

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

async fn device(served: web::Data<AtomicU64>) -> HttpResponse {
    served.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().content_type("application/json").body(
        r#"{"version":"6.3.0r20","image_sha256":"5f2b5a51e7c5cd4f8a4f0e6c1fb7a43f0e1c0a2a9b6b2e5f0d6c3a8e4b1f7c2d"}"#,
    )
}

async fn stats(served: web::Data<AtomicU64>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"served": served.load(Ordering::Relaxed)}))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = || std::io::Error::other("usage: pull-responder PORT FIRST_ADDRESS COUNT");
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).ok_or_else(usage)?;
    let first: Ipv4Addr = args.get(2).and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    let count: u32 = args.get(3).and_then(|c| c.parse().ok()).ok_or_else(usage)?;
    let served = web::Data::from(Arc::new(AtomicU64::new(0)));
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(served.clone())
                .route("/stats", web::get().to(stats))
                .route("/d/{n}", web::get().to(device))
        })
        .workers(1)
        .backlog(4096);
        for i in 0..count {
            let address = Ipv4Addr::from(u32::from(first) + i);
            server = server.bind((address, port))?;
        }
        server.run().await
    })
}
