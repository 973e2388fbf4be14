//! A customer's rollouts and maintenance windows: where its devices stand in each
//! rollout of a patch it may see, with its hold, release and take-all-in controls;
//! its windows with when each opens next, and its emergency policy.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::page_error;
use crate::api::rollouts::CustomerRolloutResponse;
use crate::auth::{AuthUser, CustomerAdminForm, WebCustomer};
use crate::domain::window::WindowInput;
use crate::error::{AppError, PageError};
use crate::http::pages::{context, form_error, render, see_other};
use crate::services::rollouts::{self, CustomerInput};
use crate::services::windows;
use crate::state::AppState;

/// `GET /fleet/rollouts`: where the customer's devices stand in each rollout.
pub async fn get_rollouts(state: web::Data<AppState>, user: WebCustomer) -> Result<HttpResponse, PageError> {
    rollouts_page(&state, &user.0, StatusCode::OK, None).await
}

async fn rollouts_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let views = rollouts::of_customer(state, &user.caller())
        .await
        .map_err(|e| page_error(state, e))?;
    let rollouts: Vec<CustomerRolloutResponse> = views.into_iter().map(CustomerRolloutResponse::of).collect();
    let mut page = context(Some(user));
    page.insert("rollouts", &rollouts);
    page.insert("error", &error);
    render(state, status, "fleet_rollouts.html", &page)
}

/// The customer's choice in a rollout, as its screen's buttons send it.
#[derive(Debug, Deserialize)]
pub struct ChoiceForm {
    /// `hold`, `release` or `accelerate`.
    pub choice: String,
}

/// `POST /fleet/rollouts/{id}/choice`: holds the customer's devices back, releases
/// them, or takes them all in.
pub async fn post_choice(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: CustomerAdminForm<ChoiceForm>,
) -> Result<HttpResponse, PageError> {
    let input = match form.fields.choice.as_str() {
        "hold" => Ok(CustomerInput {
            hold: true,
            accelerate: false,
        }),
        "release" => Ok(CustomerInput::default()),
        "accelerate" => Ok(CustomerInput {
            hold: false,
            accelerate: true,
        }),
        other => Err(AppError::Invalid {
            field: Some("choice".into()),
            message: format!("`{other}` is not hold, release or accelerate"),
        }),
    };
    let result = match input {
        Ok(input) => rollouts::choose(&state, &form.user.caller(), id.into_inner(), input)
            .await
            .map_err(AppError::from),
        Err(err) => Err(err),
    };
    match result {
        Ok(_) => Ok(see_other("/fleet/rollouts")),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            rollouts_page(&state, &form.user, status, Some(&message)).await
        }
    }
}

/// A window as its screen shows it: as put, and whether it is open or when it opens.
#[derive(Serialize)]
struct WindowRow {
    window: WindowInput,
    open_until: Option<String>,
    next_opening: Option<String>,
}

/// The new window form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WindowForm {
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub duration: String,
    #[serde(default)]
    pub time_zone: String,
    /// `name=value` pairs, comma separated; empty for all devices.
    #[serde(default)]
    pub labels: String,
    /// Empty for no cap.
    #[serde(default)]
    pub max_concurrent: String,
}

impl WindowForm {
    fn to_input(&self) -> Result<WindowInput, AppError> {
        let invalid = |field: &str, message: String| AppError::Invalid {
            field: Some(field.to_owned()),
            message,
        };
        let labels = self
            .labels
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| crate::domain::fleet::Labels::parse_pair(pair).map_err(|e| invalid("labels", e)))
            .collect::<Result<std::collections::BTreeMap<_, _>, _>>()?;
        let cap = self.max_concurrent.trim();
        let max_concurrent = if cap.is_empty() {
            None
        } else {
            Some(
                cap.parse::<u32>()
                    .map_err(|_| invalid("max_concurrent", format!("`{cap}` is not a whole number")))?,
            )
        };
        Ok(WindowInput {
            labels: (!labels.is_empty()).then_some(labels),
            schedule: self.schedule.trim().to_owned(),
            duration: self.duration.trim().to_owned(),
            time_zone: self.time_zone.trim().to_owned(),
            max_concurrent,
        })
    }
}

/// `GET /fleet/windows`: the windows, the emergency policy, and a form for another.
pub async fn get_windows(state: web::Data<AppState>, user: WebCustomer) -> Result<HttpResponse, PageError> {
    let form = WindowForm {
        schedule: "0 0 2 * * Sat".into(),
        duration: "4h".into(),
        time_zone: "UTC".into(),
        ..WindowForm::default()
    };
    windows_page(&state, &user.0, StatusCode::OK, &form, None).await
}

async fn windows_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &WindowForm,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let view = windows::view(state, &user.caller())
        .await
        .map_err(|e| page_error(state, e))?;
    let at = Utc::now();
    let rows: Vec<WindowRow> = view
        .windows
        .iter()
        .zip(windows::checked(&view))
        .map(|(input, window)| WindowRow {
            window: input.clone(),
            open_until: window.open_until(at).map(|t| t.to_rfc3339()),
            next_opening: window.next_opening(at).map(|t| t.to_rfc3339()),
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("windows", &rows);
    page.insert("ignore_windows", &view.emergencies_ignore_windows);
    page.insert("updated", &view.updated.map(|(by, at)| (by, at.and_utc().to_rfc3339())));
    page.insert("form", form);
    page.insert("error", &error);
    render(state, status, "fleet_windows.html", &page)
}

/// `POST /fleet/windows`: adds a window after the others.
pub async fn post_window(
    state: web::Data<AppState>,
    form: CustomerAdminForm<WindowForm>,
) -> Result<HttpResponse, PageError> {
    let result = async {
        let input = form.fields.to_input()?;
        let mut all = windows::view(&state, &form.user.caller()).await?.windows;
        all.push(input);
        windows::replace(&state, &form.user.caller(), all)
            .await
            .map_err(AppError::from)
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/fleet/windows")),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            windows_page(&state, &form.user, status, &form.fields, Some(&message)).await
        }
    }
}

/// `POST /fleet/windows/{n}/delete`: removes the `n`th window (from 0).
pub async fn post_window_delete(
    state: web::Data<AppState>,
    form: CustomerAdminForm<crate::http::pages::NoFields>,
    n: web::Path<usize>,
) -> Result<HttpResponse, PageError> {
    let caller = form.user.caller();
    let mut all = windows::view(&state, &caller)
        .await
        .map_err(|e| page_error(&state, e))?
        .windows;
    let n = n.into_inner();
    if n >= all.len() {
        return Err(page_error(&state, AppError::NotFound("window")));
    }
    all.remove(n);
    windows::replace(&state, &caller, all)
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/windows"))
}

/// The emergency policy's form: the box ticked or not.
#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    pub ignore_windows: Option<String>,
}

/// `POST /fleet/emergency-policy`
pub async fn post_emergency_policy(
    state: web::Data<AppState>,
    form: CustomerAdminForm<PolicyForm>,
) -> Result<HttpResponse, PageError> {
    windows::set_emergency_policy(&state, &form.user.caller(), form.fields.ignore_windows.is_some())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/windows"))
}
