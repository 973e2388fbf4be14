//! The one route table.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::handlers::pages::{account, home, login, PageError};
use crate::handlers::{customers, health, me, metrics, session, tokens, users};
use crate::templates::STYLESHEET;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::get_healthz))
        .route("/readyz", web::get().to(health::get_readyz))
        .route("/metrics", web::get().to(metrics::get_metrics))
        .route("/static/style.css", web::get().to(get_stylesheet))
        .service(
            web::scope("/api/v1")
                .route("/me", web::get().to(me::get_me))
                .service(
                    web::resource("/session")
                        .route(web::post().to(session::create_session))
                        .route(web::delete().to(session::delete_session)),
                )
                .service(
                    web::resource("/customers")
                        .route(web::get().to(customers::list_customers))
                        .route(web::post().to(customers::create_customer)),
                )
                .route("/customers/{slug}", web::get().to(customers::get_customer))
                .service(
                    web::resource("/users")
                        .route(web::get().to(users::list_users))
                        .route(web::post().to(users::create_user)),
                )
                .service(
                    web::resource("/users/{id}")
                        .route(web::get().to(users::get_user))
                        .route(web::delete().to(users::delete_user)),
                )
                .service(
                    web::resource("/tokens")
                        .route(web::get().to(tokens::list_tokens))
                        .route(web::post().to(tokens::create_token)),
                )
                .service(
                    web::resource("/tokens/{id}")
                        .route(web::get().to(tokens::get_token))
                        .route(web::delete().to(tokens::delete_token)),
                )
                .default_service(web::to(api_not_found)),
        )
        .route("/", web::get().to(home::get_home))
        .service(
            web::resource("/login")
                .route(web::get().to(login::get_login))
                .route(web::post().to(login::post_login)),
        )
        .route("/logout", web::post().to(login::post_logout))
        .route("/account", web::get().to(account::get_account))
        .route(
            "/account/tokens",
            web::post().to(account::post_account_token),
        )
        .route(
            "/account/tokens/{id}/revoke",
            web::post().to(account::post_account_token_revoke),
        )
        .default_service(web::to(page_not_found));
}

async fn get_stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(STYLESHEET)
}

async fn api_not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("route"))
}

async fn page_not_found(req: HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError::new(&req, AppError::NotFound("page")))
}
