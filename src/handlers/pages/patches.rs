//! Patch pages: the vendor screens to create, upload (with progress), publish and
//! yank patches, and the customer list of downloadable patches with their hashes and
//! the steps to verify them.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, CsrfForm, VendorForm, WebUser, WebVendor};
use crate::db::models::PatchView;
use crate::domain::range::RangeInput;
use crate::domain::PatchState;
use crate::error::AppError;
use crate::error::PageError;
use crate::http::advisory_form::parse_affected;
use crate::http::pages::{context, form_error, product_options, render, see_other};
use crate::services::patches::{self, PatchDraft, PatchReader};
use crate::services::{tenants, ServiceError};
use crate::state::AppState;

#[derive(Serialize)]
struct PatchRow {
    id: String,
    product: String,
    version: String,
    platform: Option<String>,
    filename: String,
    state: String,
    sha256: Option<String>,
    size: Option<i64>,
    yank_reason: Option<String>,
    key_id: Option<String>,
    fixes: Vec<String>,
    applies_to: String,
    created: String,
}

fn row(view: &PatchView) -> Result<PatchRow, AppError> {
    let ranges: Vec<RangeInput> = serde_json::from_str(&view.patch.applies_to)
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("reading a patch's ranges")))?;
    let applies_to = ranges
        .iter()
        .map(|r| match (&r.fixed, &r.last_affected) {
            (Some(f), _) => format!(">={} <{f}", r.introduced),
            (None, Some(l)) => format!(">={} <={l}", r.introduced),
            (None, None) => format!(">={}", r.introduced),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(PatchRow {
        id: view.patch.id.to_string(),
        product: view.product.name.clone(),
        version: view.patch.version.clone(),
        platform: view.patch.platform.clone(),
        filename: view.patch.filename.clone(),
        state: view.patch.state.as_str().to_owned(),
        sha256: view.patch.sha256.clone(),
        size: view.patch.size,
        yank_reason: view.patch.yank_reason.clone(),
        key_id: view.patch.key_id.clone(),
        fixes: view.fixes.clone(),
        applies_to,
        created: view.patch.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
    })
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PatchForm {
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub platform: String,
    /// One range per line: `>=6.3.0r12 <6.3.0r21`.
    #[serde(default)]
    pub applies_to: String,
    #[serde(default)]
    pub fixes: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub sha256: String,
}

impl PatchForm {
    fn to_draft(&self) -> Result<PatchDraft, AppError> {
        let lines: String = self
            .applies_to
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| format!("{}: {l}\n", self.product.trim()))
            .collect();
        let ranges = parse_affected(&lines)
            .map_err(|e| AppError::invalid("applies_to", e.message.replace("affected line", "applies-to line")))?
            .into_iter()
            .flat_map(|a| a.ranges)
            .collect();
        let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(PatchDraft {
            product: self.product.trim().to_owned(),
            version: self.version.trim().to_owned(),
            platform: optional(&self.platform),
            applies_to: ranges,
            fixes: self
                .fixes
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            filename: self.filename.trim().to_owned(),
            sha256: optional(&self.sha256),
            rollback: false,
        })
    }
}

async fn list_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &PatchForm,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let fail = |e: ServiceError| PageError::with_state(state, e);
    let views = patches::list(state, PatchReader::Vendor).await.map_err(fail)?;
    let products = tenants::products(state).await.map_err(fail)?;
    let mut page = context(Some(user));
    let rows = views
        .iter()
        .map(row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PageError::with_state(state, e))?;
    page.insert("patches", &rows);
    page.insert("products", &product_options(&products));
    page.insert("form", form);
    page.insert("error", &error);
    render(state, status, "vendor_patches.html", &page)
}

pub async fn get_vendor_patches(state: web::Data<AppState>, user: WebVendor) -> Result<HttpResponse, PageError> {
    list_page(&state, &user.0, StatusCode::OK, &PatchForm::default(), None).await
}

pub async fn post_vendor_patch(
    state: web::Data<AppState>,
    form: VendorForm<PatchForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let created = match fields.to_draft() {
        Ok(draft) => patches::create_draft(&state, &user.caller(), draft)
            .await
            .map(|view| view.patch)
            .map_err(AppError::from),
        Err(err) => Err(err),
    };
    match created {
        Ok(patch) => Ok(see_other(&format!("/vendor/patches/{}", patch.id))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            list_page(&state, &user, status, &fields, Some(&message)).await
        }
    }
}

async fn patch_page(
    state: &AppState,
    user: &AuthUser,
    id: String,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (view, pending) = patches::with_upload(state, id)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let mut page = context(Some(user));
    page.insert("patch", &row(&view).map_err(|e| PageError::with_state(state, e))?);
    page.insert("expected_sha256", &view.patch.expected_sha256);
    page.insert("max_bytes", &state.config.max_patch_bytes);
    page.insert("pending_upload", &pending.map(|u| (u.received, u.size)));
    page.insert("error", &error);
    render(state, status, "vendor_patch.html", &page)
}

pub async fn get_vendor_patch(
    state: web::Data<AppState>,
    user: WebVendor,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    patch_page(&state, &user.0, id.into_inner(), StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn post_vendor_patch_publish(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<NoFields>,
) -> Result<HttpResponse, PageError> {
    let user = form.user;
    let id = id.into_inner();
    match patches::publish(&state, &user.caller(), &id).await {
        Ok(_) => Ok(see_other(&format!("/vendor/patches/{id}"))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            patch_page(&state, &user, id, status, Some(&message)).await
        }
    }
}

#[derive(Deserialize)]
pub struct YankForm {
    #[serde(default)]
    pub reason: String,
}

pub async fn post_vendor_patch_yank(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<YankForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let id = id.into_inner();
    let result = patches::yank_published(&state, &user.caller(), id.clone(), fields.reason).await;
    match result {
        Ok(_) => Ok(see_other(&format!("/vendor/patches/{id}"))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            patch_page(&state, &user, id, status, Some(&message)).await
        }
    }
}

/// `GET /patches`: the patches the signed-in customer may download.
pub async fn get_customer_patches(state: web::Data<AppState>, user: WebUser) -> Result<HttpResponse, PageError> {
    let reader = PatchReader::from(&user.0.scope);
    let views = patches::list(&state, reader)
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    let mut page = context(Some(&user.0));
    let rows = views
        .iter()
        .filter(|v| v.patch.state != PatchState::Draft)
        .map(row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PageError::with_state(&state, e))?;
    page.insert("patches", &rows);
    page.insert("public_base", &state.config.url(""));
    render(&state, StatusCode::OK, "customer_patches.html", &page)
}
