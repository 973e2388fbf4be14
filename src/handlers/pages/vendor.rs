//! Vendor screens for advisories: the list of drafts and publications, the form to
//! draft and edit, a preview rendered exactly as the public page will be, and the
//! forms to publish, revise and withdraw. Every form carries the session's CSRF
//! token; every action is the same operation the API performs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, CsrfForm, VendorForm, WebVendor};
use crate::db::models::{AdvisoryRecord, Product};
use crate::domain::advisory::{
    canonical_json, revision_document, AdvisoryInput, Completeness, RevisionMeta, RevisionStatus,
};
use crate::domain::AdvisoryStatus;
use crate::error::PageError;
use crate::http::advisory_form::AdvisoryForm;
use crate::http::pages::{context, form_error, render, see_other};
use crate::http::views::advisory_context;
use crate::services::advisories::{self, Catalogue};
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
    let records = state
        .db
        .query(AdvisoryRecord::list_all)
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
            updated: r.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
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
    let products = state
        .db
        .query(Product::list)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let mut page = context(Some(user));
    page.insert("form", form);
    page.insert("error", &error);
    page.insert(
        "products",
        &products
            .iter()
            .map(|p| (p.slug.clone(), p.name.clone(), p.version_scheme.clone()))
            .collect::<Vec<_>>(),
    );
    render(state, status, "vendor_advisory_form.html", &page)
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
        Ok(input) => state.db.run(move |conn| advisories::create_draft(conn, &input)).await,
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
    let lookup = key.to_owned();
    let record = state
        .db
        .run(move |conn| advisories::find(conn, &lookup))
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let input = advisories::current_input(&record).map_err(|e| PageError::with_state(state, e))?;
    let products = state
        .db
        .query(Product::list)
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
    page.insert(
        "products",
        &products
            .iter()
            .map(|p| (p.slug.clone(), p.name.clone(), p.version_scheme.clone()))
            .collect::<Vec<_>>(),
    );
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
        Ok(input) => {
            let lookup = key.clone();
            state
                .db
                .run(move |conn| advisories::replace_draft(conn, &lookup, &input))
                .await
        }
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
async fn sign_action<F>(
    state: &AppState,
    user: &AuthUser,
    key: String,
    form: Option<AdvisoryForm>,
    action: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(
            &mut crate::db::DbConnection,
            &crate::services::advisories::PublishContext,
            &str,
        ) -> Result<(), ServiceError>
        + Send
        + 'static,
{
    let ctx = state.publish.clone();
    let lookup = key.clone();
    let done = state
        .db
        .run(move |conn| {
            action(conn, &ctx, &lookup)?;
            advisories::find(conn, &lookup)
        })
        .await;
    match done {
        Ok(record) => Ok(see_other(&format!(
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
    sign_action(&state, &user, key.into_inner(), None, move |conn, ctx, key| {
        advisories::publish(conn, ctx, key, &fields.change_summary).map(drop)
    })
    .await
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
    let summary = fields.change_summary.clone();
    sign_action(&state, &user, key, Some(fields), move |conn, ctx, key| {
        advisories::revise(conn, ctx, key, &input, &summary).map(drop)
    })
    .await
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
    sign_action(&state, &user, key.into_inner(), None, move |conn, ctx, key| {
        advisories::withdraw(conn, ctx, key, &fields.reason).map(drop)
    })
    .await
}

/// The draft rendered with the public advisory template, marked as a preview.
pub async fn get_preview(
    state: web::Data<AppState>,
    user: WebVendor,
    key: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let fail = |err: ServiceError| PageError::with_state(&state, err);
    let lookup = key.into_inner();
    let (record, input, catalogue) = state
        .db
        .run(move |conn| {
            let record = advisories::find(conn, &lookup)?;
            let input: AdvisoryInput = advisories::current_input(&record)?;
            Ok::<_, ServiceError>((record, input, Catalogue::load(conn)?))
        })
        .await
        .map_err(fail)?;
    let advisory = catalogue.validate(&input, Completeness::Draft).map_err(fail)?;
    let now = Utc::now();
    let meta = RevisionMeta {
        id: record
            .public_id
            .clone()
            .unwrap_or_else(|| "(assigned at publication)".into()),
        revision: record.latest_revision + 1,
        status: RevisionStatus::Published,
        first_published: record.first_published_at.map_or(now, |t| t.and_utc()),
        published: now,
        change_summary: if record.status == AdvisoryStatus::Draft {
            "Initial publication".into()
        } else {
            "(your change summary)".into()
        },
        history: Vec::new(),
        withdrawn_reason: None,
        key_id: state.signer.key_id().to_owned(),
    };
    let document: serde_json::Value = serde_json::from_str(&canonical_json(&revision_document(&advisory, &meta)))
        .map_err(|e| fail(ServiceError::Internal(e.into())))?;
    let mut page = context(Some(&user.0));
    advisory_context(&mut page, &document, &meta.id);
    page.insert("preview", &true);
    page.insert("edit_url", &format!("/vendor/advisories/{}", record.id));
    page.insert("history", &Vec::<String>::new());
    render(&state, StatusCode::OK, "advisory.html", &page)
}
