//! Rollout pages (vendor): a patch's rollouts with a form to plan one in waves, and
//! a rollout's screen — its waves with their devices by install state, its history,
//! and start, pause, resume, advance and cancel, each with a reason and a
//! confirmation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::api::rollouts::RolloutResponse;
use crate::auth::{AuthUser, CsrfForm, VendorForm, WebVendor};
use crate::domain::rollout::WaveInput;
use crate::domain::WaveGate;
use crate::error::{AppError, PageError};
use crate::http::pages::{context, form_error, render, see_other};
use crate::services::rollouts::{self, Command, RolloutPlan};
use crate::state::AppState;

/// The plan form: the waves' cumulative shares and the thresholds they share.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct PlanForm {
    #[serde(default)]
    pub shares: String,
    #[serde(default)]
    pub success_threshold: String,
    #[serde(default)]
    pub error_threshold: String,
    #[serde(default)]
    pub min_reports: String,
    #[serde(default)]
    pub install_timeout: String,
    /// The first wave waits for an operator before the next opens.
    #[serde(default)]
    pub manual_first: Option<String>,
    /// Everyone exposed, now: only devices exposed to an advisory the patch fixes.
    #[serde(default)]
    pub emergency_lane: Option<String>,
}

impl PlanForm {
    fn to_plan(&self) -> Result<RolloutPlan, AppError> {
        let invalid = |field: &str, message: String| AppError::Invalid {
            field: Some(field.to_owned()),
            message,
        };
        let number = |field: &str, text: &str| {
            text.trim()
                .parse::<f64>()
                .map_err(|_| invalid(field, format!("`{text}` is not a number")))
        };
        let success_threshold = number("success_threshold", &self.success_threshold)?;
        let error_threshold = number("error_threshold", &self.error_threshold)?;
        let min_reports = self
            .min_reports
            .trim()
            .parse::<u32>()
            .map_err(|_| invalid("min_reports", format!("`{}` is not a whole number", self.min_reports)))?;
        let waves = self
            .shares
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(at, share)| {
                let percent = share
                    .trim_end_matches('%')
                    .trim()
                    .parse::<u8>()
                    .map_err(|_| invalid("shares", format!("`{share}` is not a percentage")))?;
                Ok(WaveInput {
                    percent: Some(percent),
                    labels: None,
                    devices: None,
                    customers: None,
                    success_threshold,
                    error_threshold,
                    min_reports,
                    install_timeout: self.install_timeout.trim().to_owned(),
                    gate: if at == 0 && self.manual_first.is_some() {
                        WaveGate::Manual
                    } else {
                        WaveGate::Auto
                    },
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(RolloutPlan {
            waves,
            emergency_lane: self.emergency_lane.is_some(),
        })
    }
}

async fn rollouts_page(
    state: &AppState,
    user: &AuthUser,
    patch: String,
    status: StatusCode,
    form: &PlanForm,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let views = rollouts::of_patch(state, patch.clone())
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let listed: Vec<RolloutResponse> = views.into_iter().map(RolloutResponse::of).collect();
    let mut page = context(Some(user));
    page.insert("patch_id", &patch);
    page.insert("rollouts", &listed);
    page.insert("form", form);
    page.insert("error", &error);
    render(state, status, "vendor_rollouts.html", &page)
}

/// `GET /vendor/patches/{id}/rollouts`: the patch's rollouts and the plan form.
pub async fn get_patch_rollouts(
    state: web::Data<AppState>,
    user: WebVendor,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let form = PlanForm {
        shares: "5, 25, 100".into(),
        success_threshold: "95".into(),
        error_threshold: "5".into(),
        min_reports: "20".into(),
        install_timeout: "2h".into(),
        manual_first: Some("on".into()),
        emergency_lane: None,
    };
    rollouts_page(&state, &user.0, id.into_inner(), StatusCode::OK, &form, None).await
}

/// `POST /vendor/patches/{id}/rollouts`: plans a rollout from the form.
pub async fn post_patch_rollout(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<PlanForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let patch = id.into_inner();
    let planned = match fields.to_plan() {
        Ok(plan) => rollouts::create(&state, &user.caller(), patch.clone(), plan)
            .await
            .map_err(AppError::from),
        Err(err) => Err(err),
    };
    match planned {
        Ok(view) => Ok(see_other(&format!("/vendor/rollouts/{}", view.rollout.id))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            rollouts_page(&state, &user, patch, status, &fields, Some(&message)).await
        }
    }
}

async fn rollout_page(
    state: &AppState,
    user: &AuthUser,
    id: String,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let view = rollouts::view(state, id)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let mut page = context(Some(user));
    page.insert("rollout", &RolloutResponse::of(view));
    page.insert("error", &error);
    render(state, status, "vendor_rollout.html", &page)
}

/// `GET /vendor/rollouts/{id}`: the rollout's screen.
pub async fn get_rollout(
    state: web::Data<AppState>,
    user: WebVendor,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    rollout_page(&state, &user.0, id.into_inner(), StatusCode::OK, None).await
}

/// A command's form: the reason, and the box that confirms it.
#[derive(Debug, Deserialize)]
pub struct CommandForm {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub confirm: Option<String>,
    /// With a resume: the fixed patch that takes the place of a yanked one.
    #[serde(default)]
    pub patch_id: Option<String>,
}

async fn command(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
    command: Command,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let id = id.into_inner();
    let result = if fields.confirm.is_none() {
        Err(AppError::Invalid {
            field: Some("confirm".into()),
            message: "tick the box to confirm".into(),
        })
    } else {
        let reason = Some(fields.reason).filter(|r| !r.trim().is_empty());
        let patch = fields
            .patch_id
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().to_owned());
        rollouts::act(&state, &user.caller(), id.clone(), command, reason, patch)
            .await
            .map_err(AppError::from)
    };
    match result {
        Ok(_) => Ok(see_other(&format!("/vendor/rollouts/{id}"))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            rollout_page(&state, &user, id, status, Some(&message)).await
        }
    }
}

pub async fn post_rollout_start(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
) -> Result<HttpResponse, PageError> {
    command(state, id, form, Command::Start).await
}

pub async fn post_rollout_pause(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
) -> Result<HttpResponse, PageError> {
    command(state, id, form, Command::Pause).await
}

pub async fn post_rollout_resume(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
) -> Result<HttpResponse, PageError> {
    command(state, id, form, Command::Resume).await
}

pub async fn post_rollout_advance(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
) -> Result<HttpResponse, PageError> {
    command(state, id, form, Command::Advance).await
}

pub async fn post_rollout_cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: VendorForm<CommandForm>,
) -> Result<HttpResponse, PageError> {
    command(state, id, form, Command::Cancel).await
}
