//! The witness over HTTP: `POST /add-checkpoint`, one request at a time through
//! [`Witness::add_checkpoint`] on the blocking pool (it writes and syncs a file).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};

use super::{Refused, Witness, MAX_REQUEST_BYTES};

async fn add_checkpoint(witness: web::Data<Arc<Witness>>, body: web::Bytes) -> HttpResponse {
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text.to_owned(),
        Err(_) => return refusal(&Refused::Malformed("the request is not UTF-8".into())),
    };
    let witness = witness.get_ref().clone();
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    match web::block(move || witness.add_checkpoint(&text, now)).await {
        Ok(Ok(line)) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(line),
        Ok(Err(refused)) => refusal(&refused),
        Err(e) => refusal(&Refused::Storage(e.to_string())),
    }
}

fn refusal(refused: &Refused) -> HttpResponse {
    let status = match refused {
        Refused::Malformed(_) => StatusCode::BAD_REQUEST,
        Refused::UnknownLog(_) => StatusCode::NOT_FOUND,
        Refused::BadSignature => StatusCode::FORBIDDEN,
        Refused::Conflict(_) => StatusCode::CONFLICT,
        Refused::BadProof(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refused::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match refused {
        Refused::Conflict(size) => HttpResponse::build(status)
            .content_type("text/x.tlog.size")
            .body(format!("{size}\n")),
        Refused::Storage(why) => {
            tracing::error!(error = %why, "the witness state could not be written");
            HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body("the checkpoint could not be recorded\n")
        }
        other => HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(format!("{other}\n")),
    }
}

/// Binds `listen` and returns the address bound and the server to await.
pub fn bind(witness: Arc<Witness>, listen: SocketAddr) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let data = web::Data::new(witness);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_REQUEST_BYTES))
            .route("/add-checkpoint", web::post().to(add_checkpoint))
    })
    .workers(2)
    .bind(listen)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("bound no address"))?;
    Ok((bound, server.run()))
}
