//! The one route table. Every route is added through [`Table`], which both registers
//! it and lists it, so tests and the OpenAPI check walk the same table the server
//! serves ([`table`]) instead of a list kept by hand.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route};

use crate::error::{AppError, PageError};
use crate::handlers::api::{
    advisories, anomalies, customers, devices, enrollment_tokens, entitlements, evidence, exposure, images, keys, log,
    me, patches, products, pulls, query, rollouts, session, tokens, uploads, users, vex, webhooks, windows,
};
use crate::handlers::device::{enroll, poll, report};
use crate::handlers::feeds::{atom, csaf};
use crate::handlers::ops::{assets, health, metrics};
use crate::handlers::pages::{
    account, advisories as advisory_pages, customers as customer_pages, fleet as fleet_pages, home, log as log_pages,
    login, patches as patch_pages, people, rollouts as rollout_pages, vendor,
};

/// The prefix of the JSON API.
pub const API_PREFIX: &str = "/api/v1";

/// One route of the table: its method and path pattern (`{name}` for a segment).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
}

/// Routes collected in order; each path becomes one resource with its methods, so a
/// wrong method on a known path answers 405.
#[derive(Default)]
pub struct Table {
    routes: Vec<(String, Method, Route)>,
}

impl Table {
    fn add<F, Args>(&mut self, method: Method, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::method(method.clone()).to(handler);
        self.routes.push((path.to_owned(), method, route));
        self
    }

    fn get<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, handler)
    }

    fn post<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, handler)
    }

    /// The routes as (method, path), in table order.
    pub fn list(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|(path, method, _)| RouteInfo {
                method: method.as_str().to_ascii_lowercase(),
                path: path.clone(),
            })
            .collect()
    }

    fn register(self, cfg: &mut web::ServiceConfig) {
        let mut resources: Vec<(String, actix_web::Resource)> = Vec::new();
        for (path, _, route) in self.routes {
            match resources.iter_mut().find(|(p, _)| *p == path) {
                Some((_, resource)) => {
                    let taken = std::mem::replace(resource, web::resource(""));
                    *resource = taken.route(route);
                }
                None => {
                    let resource = web::resource(path.as_str()).route(route);
                    resources.push((path, resource));
                }
            }
        }
        for (_, resource) in resources {
            cfg.service(resource);
        }
    }
}

/// Every route the server serves.
pub fn table() -> Table {
    let mut t = Table::default();
    let api = |path: &str| format!("{API_PREFIX}{path}");
    // The hot paths first: the router tries resources in order, and every pattern
    // with a parameter tried before a match costs a regular-expression search.
    t.post(&api("/device/poll"), poll::poll_device)
        .post(&api("/device/report"), report::report_install)
        .post(&api("/device/enroll"), enroll::enroll_device)
        .get(&api("/patches/{id}/download"), patches::download_patch)
        .add(Method::HEAD, &api("/patches/{id}/download"), patches::download_patch);
    t.get("/healthz", health::get_healthz)
        .get("/readyz", health::get_readyz)
        .get("/metrics", metrics::get_metrics)
        .get("/static/style.css", assets::get_stylesheet)
        .get("/static/upload.js", assets::get_upload_script);
    t.get(&api("/openapi.json"), assets::get_openapi)
        .get(&api("/me"), me::get_me)
        .post(&api("/session"), session::create_session)
        .add(Method::DELETE, &api("/session"), session::delete_session)
        .get(&api("/customers"), customers::list_customers)
        .post(&api("/customers"), customers::create_customer)
        .get(&api("/customers/{slug}"), customers::get_customer)
        .get(&api("/customers/{slug}/entitlements"), entitlements::get_entitlements)
        .add(
            Method::PUT,
            &api("/customers/{slug}/entitlements"),
            entitlements::put_entitlements,
        )
        .get(&api("/patches"), patches::list_patches)
        .post(&api("/patches"), patches::create_patch)
        .get(&api("/patches/{id}"), patches::get_patch)
        .add(Method::PUT, &api("/patches/{id}/file"), patches::upload_patch_file)
        .post(&api("/patches/{id}/upload"), uploads::begin_upload)
        .get(&api("/patches/{id}/upload"), uploads::get_upload)
        .add(Method::HEAD, &api("/patches/{id}/upload"), uploads::get_upload)
        .add(Method::PATCH, &api("/patches/{id}/upload"), uploads::append_upload)
        .add(Method::DELETE, &api("/patches/{id}/upload"), uploads::cancel_upload)
        .post(&api("/patches/{id}/publish"), patches::publish_patch)
        .post(&api("/patches/{id}/yank"), patches::yank_patch)
        .get(&api("/patches/{id}/minisig"), patches::get_patch_minisig)
        .get(&api("/patches/{id}/proof"), patches::get_patch_proof)
        .post(&api("/patches/{id}/rollouts"), rollouts::create_rollout)
        .get(&api("/patches/{id}/rollouts"), rollouts::list_rollouts)
        .get(&api("/rollouts/{id}"), rollouts::get_rollout)
        .post(&api("/rollouts/{id}/start"), rollouts::start_rollout)
        .post(&api("/rollouts/{id}/pause"), rollouts::pause_rollout)
        .post(&api("/rollouts/{id}/resume"), rollouts::resume_rollout)
        .post(&api("/rollouts/{id}/advance"), rollouts::advance_rollout)
        .post(&api("/rollouts/{id}/cancel"), rollouts::cancel_rollout)
        .get(&api("/rollouts/{id}/customer"), rollouts::get_customer_rollout)
        .add(
            Method::PUT,
            &api("/rollouts/{id}/customer"),
            rollouts::put_customer_rollout,
        )
        .get(&api("/maintenance-windows"), windows::get_windows)
        .add(Method::PUT, &api("/maintenance-windows"), windows::put_windows)
        .get(&api("/emergency-policy"), windows::get_emergency_policy)
        .add(Method::PUT, &api("/emergency-policy"), windows::put_emergency_policy)
        .get(&api("/users"), users::list_users)
        .post(&api("/users"), users::create_user)
        .get(&api("/users/{id}"), users::get_user)
        .add(Method::DELETE, &api("/users/{id}"), users::delete_user)
        .get(&api("/tokens"), tokens::list_tokens)
        .post(&api("/tokens"), tokens::create_token)
        .get(&api("/tokens/{id}"), tokens::get_token)
        .add(Method::DELETE, &api("/tokens/{id}"), tokens::delete_token)
        .get(&api("/products"), products::list_products)
        .post(&api("/products"), products::create_product)
        .get(&api("/advisories"), advisories::list_advisories)
        .post(&api("/advisories"), advisories::create_advisory)
        .get(&api("/advisories/{id}"), advisories::get_advisory)
        .add(Method::PATCH, &api("/advisories/{id}"), advisories::update_advisory)
        .get(&api("/advisories/{id}/minisig"), advisories::get_advisory_minisig)
        .get(&api("/advisories/{id}/draft"), advisories::get_advisory_draft)
        .post(&api("/advisories/{id}/publish"), advisories::publish_advisory)
        .post(&api("/advisories/{id}/withdraw"), advisories::withdraw_advisory)
        .get(&api("/advisories/{id}/revisions"), advisories::list_revisions)
        .post(&api("/advisories/{id}/revisions"), advisories::revise_advisory)
        .get(&api("/advisories/{id}/revisions/{n}"), advisories::get_revision)
        .get(
            &api("/advisories/{id}/revisions/{n}/minisig"),
            advisories::get_revision_minisig,
        )
        .get(&api("/advisories/{id}/exposure"), exposure::get_exposure)
        .get(&api("/advisories/{id}/exposure.csv"), exposure::get_exposure_csv)
        .get(&api("/devices"), devices::list_devices)
        .post(&api("/devices"), devices::create_device)
        .get(&api("/devices/{id}"), devices::get_device)
        .add(Method::DELETE, &api("/devices/{id}"), devices::delete_device)
        .post(&api("/devices/{id}/pull"), pulls::pull_device)
        .add(Method::PUT, &api("/devices/{id}/pull"), pulls::put_pull_settings)
        .get(&api("/pull-schedule"), pulls::get_default_schedule)
        .add(Method::PUT, &api("/pull-schedule"), pulls::put_default_schedule)
        .get(&api("/products/{slug}/images"), images::list_images)
        .post(&api("/products/{slug}/images"), images::create_image)
        .get(&api("/anomalies"), anomalies::list_anomalies)
        .post(&api("/anomalies/{id}/ack"), anomalies::acknowledge_anomaly)
        .get(&api("/webhooks"), webhooks::list_webhooks)
        .post(&api("/webhooks"), webhooks::create_webhook)
        .add(Method::DELETE, &api("/webhooks/{id}"), webhooks::delete_webhook)
        .get(&api("/webhooks/{id}/deliveries"), webhooks::list_deliveries)
        .post(&api("/webhooks/{id}/ping"), webhooks::ping_webhook)
        .post(
            &api("/webhooks/{id}/deliveries/{delivery}/retry"),
            webhooks::retry_delivery,
        )
        .get(&api("/enrollment-tokens"), enrollment_tokens::list_enrollment_tokens)
        .post(&api("/enrollment-tokens"), enrollment_tokens::create_enrollment_token)
        .add(
            Method::DELETE,
            &api("/enrollment-tokens/{id}"),
            enrollment_tokens::delete_enrollment_token,
        )
        .post(&api("/query"), query::query)
        .get(&api("/keys"), keys::list_keys)
        .get(&api("/keys/{key_id}"), keys::get_key)
        .get(&api("/log/head"), log::get_head)
        .get(&api("/log/checkpoint"), log::get_checkpoint)
        .get(&api("/log/tile/{tail:.*}"), log::get_tile)
        .get(&api("/log/heads"), log::get_heads)
        .get(&api("/log/entries"), log::get_entries)
        .get(&api("/log/proof/inclusion"), log::get_inclusion_proof)
        .get(&api("/log/proof/consistency"), log::get_consistency_proof)
        .get(&api("/advisories/{id}/evidence"), evidence::get_evidence)
        .get(&api("/advisories/{id}/vex"), vex::get_vex);
    t.get("/feeds/advisories.atom", atom::get_atom_feed)
        .get("/.well-known/security.txt", csaf::get_security_txt)
        .get("/.well-known/csaf/provider-metadata.json", csaf::get_provider_metadata)
        .get("/.well-known/csaf/feed-tlp-white.json", csaf::get_feed)
        .get("/.well-known/csaf/service.json", csaf::get_service)
        .get("/.well-known/csaf/category-white.json", csaf::get_category)
        .get("/.well-known/csaf/openpgp/{file}", csaf::get_key)
        .get("/.well-known/csaf/white/", csaf::get_directory)
        .get("/.well-known/csaf/white/index.txt", csaf::get_index)
        .get("/.well-known/csaf/white/changes.csv", csaf::get_changes)
        .get("/.well-known/csaf/white/{year}/", csaf::get_year)
        .get("/.well-known/csaf/white/{year}/{file}", csaf::get_document)
        .get("/.well-known/csaf/feed-tlp-{tlp}.json", csaf::get_restricted_feed)
        .get("/.well-known/csaf/{tlp}/", csaf::get_restricted_directory)
        .get("/.well-known/csaf/{tlp}/index.txt", csaf::get_restricted_index)
        .get("/.well-known/csaf/{tlp}/changes.csv", csaf::get_restricted_changes)
        .get("/.well-known/csaf/{tlp}/{year}/", csaf::get_restricted_year)
        .get("/.well-known/csaf/{tlp}/{year}/{file}", csaf::get_restricted_document);
    t.get("/advisories", advisory_pages::get_index)
        .get("/advisories/{id}", advisory_pages::get_advisory_page)
        .get("/vendor/advisories", vendor::get_vendor_advisories)
        .post("/vendor/advisories", vendor::post_new_advisory)
        .get("/vendor/advisories/new", vendor::get_new_advisory)
        .get("/vendor/advisories/{key}", vendor::get_vendor_advisory)
        .post("/vendor/advisories/{key}", vendor::post_vendor_advisory)
        .get("/vendor/advisories/{key}/preview", vendor::get_preview)
        .post("/vendor/advisories/{key}/publish", vendor::post_publish)
        .post("/vendor/advisories/{key}/revise", vendor::post_revise)
        .post("/vendor/advisories/{key}/withdraw", vendor::post_withdraw)
        .get("/vendor/patches", patch_pages::get_vendor_patches)
        .post("/vendor/patches", patch_pages::post_vendor_patch)
        .get("/vendor/patches/{id}", patch_pages::get_vendor_patch)
        .post("/vendor/patches/{id}/publish", patch_pages::post_vendor_patch_publish)
        .post("/vendor/patches/{id}/yank", patch_pages::post_vendor_patch_yank)
        .get("/vendor/patches/{id}/rollouts", rollout_pages::get_patch_rollouts)
        .post("/vendor/patches/{id}/rollouts", rollout_pages::post_patch_rollout)
        .get("/vendor/rollouts/{id}", rollout_pages::get_rollout)
        .post("/vendor/rollouts/{id}/start", rollout_pages::post_rollout_start)
        .post("/vendor/rollouts/{id}/pause", rollout_pages::post_rollout_pause)
        .post("/vendor/rollouts/{id}/resume", rollout_pages::post_rollout_resume)
        .post("/vendor/rollouts/{id}/advance", rollout_pages::post_rollout_advance)
        .post("/vendor/rollouts/{id}/cancel", rollout_pages::post_rollout_cancel)
        .get("/vendor/log", log_pages::get_log)
        .get("/vendor/customers", customer_pages::get_customers)
        .post("/vendor/customers", customer_pages::post_customer)
        .get("/vendor/customers/{slug}", customer_pages::get_customer)
        .post(
            "/vendor/customers/{slug}/entitlements",
            customer_pages::post_entitlements,
        )
        .post("/vendor/customers/{slug}/admins", customer_pages::post_admin)
        .get("/patches", patch_pages::get_customer_patches)
        .get("/fleet", fleet_pages::get_dashboard)
        .get("/fleet/devices", fleet_pages::get_devices)
        .post("/fleet/devices", fleet_pages::post_device)
        .get("/fleet/devices/{id}", fleet_pages::get_device)
        .post("/fleet/devices/{id}/decommission", fleet_pages::post_decommission)
        .post("/fleet/devices/{id}/pull", fleet_pages::post_pull)
        .post("/fleet/anomalies/{id}/ack", fleet_pages::post_ack)
        .get("/fleet/webhooks", fleet_pages::get_webhooks)
        .post("/fleet/webhooks", fleet_pages::post_webhook)
        .post("/fleet/webhooks/{id}/delete", fleet_pages::post_webhook_delete)
        .post("/fleet/webhooks/{id}/ping", fleet_pages::post_webhook_ping)
        .post(
            "/fleet/webhooks/{id}/deliveries/{delivery}/retry",
            fleet_pages::post_delivery_retry,
        )
        .get("/fleet/rollouts", fleet_pages::get_rollouts)
        .post("/fleet/rollouts/{id}/choice", fleet_pages::post_choice)
        .get("/fleet/windows", fleet_pages::get_windows)
        .post("/fleet/windows", fleet_pages::post_window)
        .post("/fleet/windows/{n}/delete", fleet_pages::post_window_delete)
        .post("/fleet/emergency-policy", fleet_pages::post_emergency_policy)
        .get("/fleet/enrollment-tokens", fleet_pages::get_tokens)
        .post("/fleet/enrollment-tokens", fleet_pages::post_token)
        .post("/fleet/enrollment-tokens/{id}/revoke", fleet_pages::post_token_revoke)
        .get("/", home::get_home)
        .get("/login", login::get_login)
        .post("/login", login::post_login)
        .post("/logout", login::post_logout)
        .get("/account", account::get_account)
        .post("/account/tokens", account::post_account_token)
        .post("/account/tokens/{id}/revoke", account::post_account_token_revoke)
        .get("/account/password", people::get_password)
        .post("/account/password", people::post_password)
        .get("/people", people::get_people)
        .post("/people", people::post_person)
        .post("/people/{id}/delete", people::post_person_delete)
        .post("/people/{id}/sessions", people::post_person_sessions);
    t
}

/// Registers the table, then the JSON 404 for unknown API paths and the HTML 404
/// for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    table().register(cfg);
    cfg.service(web::scope(API_PREFIX).default_service(web::to(api_not_found)))
        .default_service(web::to(page_not_found));
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

    use super::*;

    #[test]
    fn the_openapi_description_covers_every_api_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(assets::OPENAPI).unwrap();
        let mut described = BTreeSet::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for method in methods.as_object().unwrap().keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        let table: BTreeSet<(String, String)> = table()
            .list()
            .into_iter()
            .filter(|r| r.path.starts_with(API_PREFIX))
            .map(|r| (r.method, openapi_path(&r.path)))
            .collect();
        assert!(table.len() > 30, "the route table lists too little: {table:?}");
        assert_eq!(table, described, "the route table and docs/openapi.json disagree");
    }

    /// A route pattern as OpenAPI writes it: `{tail:.*}` is `{tail}`.
    fn openapi_path(pattern: &str) -> String {
        let mut out = String::new();
        let mut in_name = false;
        let mut in_regex = false;
        for c in pattern.chars() {
            match c {
                '{' => in_name = true,
                ':' if in_name => {
                    in_regex = true;
                    continue;
                }
                '}' => {
                    in_name = false;
                    in_regex = false;
                }
                _ if in_regex => continue,
                _ => {}
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn no_route_is_listed_twice() {
        let list = table().list();
        let unique: BTreeSet<&RouteInfo> = list.iter().collect();
        assert_eq!(unique.len(), list.len());
    }
}
