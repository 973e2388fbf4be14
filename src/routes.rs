//! The one route table.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::handlers::pages::{
    account, advisories as advisory_pages, home, login, patches as patch_pages, vendor, PageError,
};
use crate::handlers::{
    advisories, csaf, customers, entitlements, feeds, health, keys, me, metrics, patches, products, query, session,
    tokens, uploads, users,
};
use crate::templates::{STYLESHEET, UPLOAD_SCRIPT};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::get_healthz))
        .route("/readyz", web::get().to(health::get_readyz))
        .route("/metrics", web::get().to(metrics::get_metrics))
        .route("/static/style.css", web::get().to(get_stylesheet))
        .route("/static/upload.js", web::get().to(get_upload_script))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(get_openapi))
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
                    web::resource("/customers/{slug}/entitlements")
                        .route(web::get().to(entitlements::get_entitlements))
                        .route(web::put().to(entitlements::put_entitlements)),
                )
                .service(
                    web::resource("/patches")
                        .route(web::get().to(patches::list_patches))
                        .route(web::post().to(patches::create_patch)),
                )
                .route("/patches/{id}", web::get().to(patches::get_patch))
                .route("/patches/{id}/file", web::put().to(patches::upload_patch_file))
                .service(
                    web::resource("/patches/{id}/upload")
                        .route(web::post().to(uploads::begin_upload))
                        .route(web::get().to(uploads::get_upload))
                        .route(web::head().to(uploads::get_upload))
                        .route(web::patch().to(uploads::append_upload))
                        .route(web::delete().to(uploads::cancel_upload)),
                )
                .route("/patches/{id}/publish", web::post().to(patches::publish_patch))
                .route("/patches/{id}/yank", web::post().to(patches::yank_patch))
                .route("/patches/{id}/minisig", web::get().to(patches::get_patch_minisig))
                .service(
                    web::resource("/patches/{id}/download")
                        .route(web::get().to(patches::download_patch))
                        .route(web::head().to(patches::download_patch)),
                )
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
                .service(
                    web::resource("/products")
                        .route(web::get().to(products::list_products))
                        .route(web::post().to(products::create_product)),
                )
                .service(
                    web::resource("/advisories")
                        .route(web::get().to(advisories::list_advisories))
                        .route(web::post().to(advisories::create_advisory)),
                )
                .service(
                    web::resource("/advisories/{id}")
                        .route(web::get().to(advisories::get_advisory))
                        .route(web::patch().to(advisories::update_advisory)),
                )
                .route(
                    "/advisories/{id}/minisig",
                    web::get().to(advisories::get_advisory_minisig),
                )
                .route("/advisories/{id}/draft", web::get().to(advisories::get_advisory_draft))
                .route("/advisories/{id}/publish", web::post().to(advisories::publish_advisory))
                .route(
                    "/advisories/{id}/withdraw",
                    web::post().to(advisories::withdraw_advisory),
                )
                .service(
                    web::resource("/advisories/{id}/revisions")
                        .route(web::get().to(advisories::list_revisions))
                        .route(web::post().to(advisories::revise_advisory)),
                )
                .route(
                    "/advisories/{id}/revisions/{n}",
                    web::get().to(advisories::get_revision),
                )
                .route(
                    "/advisories/{id}/revisions/{n}/minisig",
                    web::get().to(advisories::get_revision_minisig),
                )
                .route("/query", web::post().to(query::query))
                .route("/keys", web::get().to(keys::list_keys))
                .route("/keys/{key_id}", web::get().to(keys::get_key))
                .default_service(web::to(api_not_found)),
        )
        .route("/feeds/advisories.atom", web::get().to(feeds::get_atom_feed))
        .route(
            "/.well-known/csaf/provider-metadata.json",
            web::get().to(csaf::get_provider_metadata),
        )
        .route("/.well-known/csaf/white/index.txt", web::get().to(csaf::get_index))
        .route("/.well-known/csaf/white/changes.csv", web::get().to(csaf::get_changes))
        .route(
            "/.well-known/csaf/white/{year}/{file}",
            web::get().to(csaf::get_document),
        )
        .route("/advisories", web::get().to(advisory_pages::get_index))
        .route("/advisories/{id}", web::get().to(advisory_pages::get_advisory_page))
        .route("/vendor/advisories", web::get().to(vendor::get_vendor_advisories))
        .route("/vendor/advisories", web::post().to(vendor::post_new_advisory))
        .route("/vendor/advisories/new", web::get().to(vendor::get_new_advisory))
        .route("/vendor/advisories/{key}", web::get().to(vendor::get_vendor_advisory))
        .route("/vendor/advisories/{key}", web::post().to(vendor::post_vendor_advisory))
        .route("/vendor/advisories/{key}/preview", web::get().to(vendor::get_preview))
        .route("/vendor/advisories/{key}/publish", web::post().to(vendor::post_publish))
        .route("/vendor/advisories/{key}/revise", web::post().to(vendor::post_revise))
        .route(
            "/vendor/advisories/{key}/withdraw",
            web::post().to(vendor::post_withdraw),
        )
        .route("/vendor/patches", web::get().to(patch_pages::get_vendor_patches))
        .route("/vendor/patches", web::post().to(patch_pages::post_vendor_patch))
        .route("/vendor/patches/{id}", web::get().to(patch_pages::get_vendor_patch))
        .route(
            "/vendor/patches/{id}/publish",
            web::post().to(patch_pages::post_vendor_patch_publish),
        )
        .route(
            "/vendor/patches/{id}/yank",
            web::post().to(patch_pages::post_vendor_patch_yank),
        )
        .route("/patches", web::get().to(patch_pages::get_customer_patches))
        .route("/", web::get().to(home::get_home))
        .service(
            web::resource("/login")
                .route(web::get().to(login::get_login))
                .route(web::post().to(login::post_login)),
        )
        .route("/logout", web::post().to(login::post_logout))
        .route("/account", web::get().to(account::get_account))
        .route("/account/tokens", web::post().to(account::post_account_token))
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

async fn get_upload_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(UPLOAD_SCRIPT)
}

/// The OpenAPI description of every `/api/v1` route.
const OPENAPI: &str = include_str!("../docs/openapi.json");

async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("cache-control", "public, max-age=300"))
        .body(OPENAPI)
}

async fn api_not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("route"))
}

async fn page_not_found(req: HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError::new(&req, AppError::NotFound("page")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(method, path)` of every route in the `/api/v1` scope of this file's table.
    fn table_routes() -> BTreeSet<(String, String)> {
        let source = include_str!("routes.rs");
        let start = source
            .find("web::scope(\"/api/v1\")")
            .map(|i| i + "web::scope(\"/api/v1\")".len());
        let end = source.find(".default_service(web::to(api_not_found))");
        let (Some(start), Some(end)) = (start, end) else {
            panic!("the route table lost its /api/v1 scope markers");
        };
        let scope = &source[start..end];
        let mut routes = BTreeSet::new();
        let mut current = String::new();
        let mut rest = scope;
        while !rest.is_empty() {
            let next_path = rest.find("\"/");
            let next_method = rest.find("web::").filter(|i| {
                ["get()", "post()", "put()", "patch()", "delete()", "head()"]
                    .iter()
                    .any(|m| rest[i + 5..].starts_with(m))
            });
            match (next_path, next_method) {
                (Some(p), m) if m.is_none_or(|m| p < m) => {
                    let literal = &rest[p + 1..];
                    let close = literal.find('"').unwrap_or(literal.len());
                    current = format!("/api/v1{}", &literal[..close]);
                    rest = &literal[close..];
                }
                (_, Some(m)) => {
                    let method = &rest[m + 5..];
                    let name = &method[..method.find('(').unwrap_or(0)];
                    routes.insert((name.to_owned(), current.clone()));
                    rest = &rest[m + 5..];
                }
                _ => break,
            }
        }
        routes
    }

    #[test]
    fn the_openapi_description_covers_every_api_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut described = BTreeSet::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for method in methods.as_object().unwrap().keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        let table = table_routes();
        assert!(table.len() > 30, "the route table parse found too little: {table:?}");
        assert_eq!(table, described, "routes.rs and docs/openapi.json disagree");
    }
}
