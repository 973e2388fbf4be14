//! Vendor screens for advisories: the list of drafts and publications, the form to
//! draft and edit, a preview rendered exactly as the public page will be, and the
//! forms to publish, revise and withdraw. Every form carries the session's CSRF
//! token; every action is the same operation the API performs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, CsrfForm, VendorForm, WebVendor};
use crate::db::models::Product;
use crate::error::PageError;
use crate::http::advisory_form::AdvisoryForm;
use crate::http::pages::{context, form_error, render, see_other};
use crate::http::views::advisory_context;
use crate::services::advisories::{self, SignAction};
use crate::services::tenants;
use crate::services::ServiceError;
use crate::state::AppState;

#[derive(Serialize)]
struct Row {
    key: String,
    public_id: Option<String>,
    title: String,
    status: String,
    severity: Option<String>,
    emergency: bool,
    revision: i32,
    updated: String,
}

pub async fn get_vendor_advisories(state: web::Data<AppState>, user: WebVendor) -> Result<HttpResponse, PageError> {
    let records = advisories::all(&state)
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    let rows: Vec<Row> = records
        .into_iter()
        .map(|r| Row {
            key: r.id.to_string(),
            public_id: r.public_id,
            title: r.title,
            status: r.status.as_str().to_owned(),
            severity: r.severity,
            emergency: r.emergency,
            revision: r.latest_revision,
            updated: r.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        })
        .collect();
    let mut page = context(Some(&user.0));
    page.insert("rows", &rows);
    render(&state, StatusCode::OK, "vendor_advisories.html", &page)
}

async fn form_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &AdvisoryForm,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let products = tenants::products(state)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let mut page = context(Some(user));
    page.insert("form", form);
    page.insert("error", &error);
    page.insert("products", &products_with_schemes(&products));
    render(state, status, "vendor_advisory_form.html", &page)
}

/// Products as (slug, name, version scheme) for the advisory form, which shows
/// version examples for the scheme chosen.
fn products_with_schemes(products: &[Product]) -> Vec<(String, String, String)> {
    products
        .iter()
        .map(|p| (p.slug.clone(), p.name.clone(), p.version_scheme.as_str().to_owned()))
        .collect()
}

pub async fn get_new_advisory(state: web::Data<AppState>, user: WebVendor) -> Result<HttpResponse, PageError> {
    form_page(&state, &user.0, StatusCode::OK, &AdvisoryForm::default(), None).await
}

pub async fn post_new_advisory(
    state: web::Data<AppState>,
    form: VendorForm<AdvisoryForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let created = match fields.to_input() {
        Ok(input) => advisories::create(&state, &user.caller(), input).await,
        Err(err) => Err(err.into()),
    };
    match created {
        Ok(record) => Ok(see_other(&format!("/vendor/advisories/{}", record.id))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            form_page(&state, &user, status, &fields, Some(&message)).await
        }
    }
}

/// The advisory screen: the draft form, or the revise and withdraw forms.
async fn advisory_page(
    state: &AppState,
    user: &AuthUser,
    key: &str,
    status_code: StatusCode,
    form: Option<AdvisoryForm>,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let record = advisories::draft(state, key.to_owned())
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let input = advisories::current_input(&record).map_err(|e| PageError::with_state(state, e))?;
    let products = tenants::products(state)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let mut page = context(Some(user));
    page.insert("key", &record.id.to_string());
    page.insert("public_id", &record.public_id);
    page.insert("status", &record.status);
    page.insert("title", &record.title);
    page.insert("revision", &record.latest_revision);
    page.insert("form", &form.unwrap_or_else(|| AdvisoryForm::from_input(&input)));
    page.insert("error", &error);
    page.insert("products", &products_with_schemes(&products));
    render(state, status_code, "vendor_advisory.html", &page)
}

pub async fn get_vendor_advisory(
    state: web::Data<AppState>,
    user: WebVendor,
    key: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    advisory_page(&state, &user.0, &key, StatusCode::OK, None, None).await
}

/// Answers a failed action on the advisory screen: input errors and conflicts are
/// shown on the page, anything else is an error page.
async fn action_failed(
    state: &AppState,
    user: &AuthUser,
    key: &str,
    form: Option<AdvisoryForm>,
    err: ServiceError,
) -> Result<HttpResponse, PageError> {
    let (status, message) = form_error(state, err)?;
    advisory_page(state, user, key, status, form, Some(&message)).await
}

pub async fn post_vendor_advisory(
    state: web::Data<AppState>,
    key: web::Path<String>,
    form: VendorForm<AdvisoryForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let key = key.into_inner();
    let saved = match fields.to_input() {
        Ok(input) => advisories::replace(&state, key.clone(), input).await,
        Err(err) => Err(err.into()),
    };
    match saved {
        Ok(record) => Ok(see_other(&format!("/vendor/advisories/{}", record.id))),
        Err(err) => action_failed(&state, &user, &key, Some(fields), err).await,
    }
}

#[derive(Deserialize)]
pub struct SummaryForm {
    #[serde(default)]
    pub change_summary: String,
}

/// Runs one signing action (publish, revise, withdraw) on the advisory `key`, then
/// shows the public page; refusals are shown on the advisory screen with `form`.
async fn sign_action(
    state: &AppState,
    user: &AuthUser,
    key: String,
    form: Option<AdvisoryForm>,
    action: SignAction,
) -> Result<HttpResponse, PageError> {
    match advisories::sign(state, &user.caller(), key.clone(), action).await {
        Ok((record, _, _)) => Ok(see_other(&format!(
            "/advisories/{}",
            record.public_id.unwrap_or_default()
        ))),
        Err(err) => action_failed(state, user, &key, form, err).await,
    }
}

pub async fn post_publish(
    state: web::Data<AppState>,
    key: web::Path<String>,
    form: VendorForm<SummaryForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let action = SignAction::Publish {
        change_summary: fields.change_summary,
    };
    sign_action(&state, &user, key.into_inner(), None, action).await
}

pub async fn post_revise(
    state: web::Data<AppState>,
    key: web::Path<String>,
    form: VendorForm<AdvisoryForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let key = key.into_inner();
    let input = match fields.to_input() {
        Ok(input) => input,
        Err(err) => return action_failed(&state, &user, &key, Some(fields), err.into()).await,
    };
    let action = SignAction::Revise {
        input: Box::new(input),
        change_summary: fields.change_summary.clone(),
    };
    sign_action(&state, &user, key, Some(fields), action).await
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
}

pub async fn post_withdraw(
    state: web::Data<AppState>,
    key: web::Path<String>,
    form: VendorForm<ReasonForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let action = SignAction::Withdraw { reason: fields.reason };
    sign_action(&state, &user, key.into_inner(), None, action).await
}

/// The draft rendered with the public advisory template, marked as a preview.
pub async fn get_preview(
    state: web::Data<AppState>,
    user: WebVendor,
    key: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (record, id, document) = advisories::preview(&state, key.into_inner())
        .await
        .map_err(|err| PageError::with_state(&state, err))?;
    let mut page = context(Some(&user.0));
    advisory_context(&mut page, &document, &id);
    page.insert("preview", &true);
    page.insert("edit_url", &format!("/vendor/advisories/{}", record.id));
    page.insert("history", &Vec::<String>::new());
    render(&state, StatusCode::OK, "advisory.html", &page)
}
