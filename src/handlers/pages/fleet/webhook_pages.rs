//! Webhooks: the list with recent deliveries, registering one (its secret shown
//! once), pings, sending a delivery again, removing one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::page_error;
use crate::api::events::{DeliveryResponse, WebhookDraft, WebhookResponse};
use crate::auth::{AuthUser, CustomerAdminForm, WebCustomer};
use crate::domain::EventType;
use crate::error::PageError;
use crate::http::pages::{context, render, see_other, NoFields};
use crate::services::webhooks;
use crate::services::ServiceError;
use crate::state::AppState;

/// The webhook form: the URL and one box per event.
#[derive(Deserialize, Serialize, Default)]
pub struct WebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    advisory_published: Option<String>,
    #[serde(default)]
    advisory_revised: Option<String>,
    #[serde(default)]
    emergency: Option<String>,
    #[serde(default)]
    anomaly: Option<String>,
    #[serde(default)]
    device_unreachable: Option<String>,
    #[serde(default)]
    deadline_overdue: Option<String>,
    #[serde(default)]
    rollout_paused: Option<String>,
    #[serde(default)]
    rollout_advanced: Option<String>,
    #[serde(default)]
    rollout_finished: Option<String>,
}

impl WebhookForm {
    /// Each event with its box's name and whether it is ticked.
    fn boxes(&self) -> [(EventType, &'static str, bool); 9] {
        [
            (
                EventType::AdvisoryPublished,
                "advisory_published",
                self.advisory_published.is_some(),
            ),
            (
                EventType::AdvisoryRevised,
                "advisory_revised",
                self.advisory_revised.is_some(),
            ),
            (EventType::Emergency, "emergency", self.emergency.is_some()),
            (EventType::Anomaly, "anomaly", self.anomaly.is_some()),
            (
                EventType::DeviceUnreachable,
                "device_unreachable",
                self.device_unreachable.is_some(),
            ),
            (
                EventType::DeadlineOverdue,
                "deadline_overdue",
                self.deadline_overdue.is_some(),
            ),
            (
                EventType::RolloutPaused,
                "rollout_paused",
                self.rollout_paused.is_some(),
            ),
            (
                EventType::RolloutAdvanced,
                "rollout_advanced",
                self.rollout_advanced.is_some(),
            ),
            (
                EventType::RolloutFinished,
                "rollout_finished",
                self.rollout_finished.is_some(),
            ),
        ]
    }
}

#[derive(Serialize)]
struct EventBox {
    name: &'static str,
    field: &'static str,
    checked: bool,
}

#[derive(Serialize)]
struct HookView {
    hook: WebhookResponse,
    deliveries: Vec<DeliveryResponse>,
}

async fn webhooks_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &WebhookForm,
    error: Option<&str>,
    created: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let hooks = webhooks::overview(state, &user.caller())
        .await
        .map_err(|e| page_error(state, e))?;
    let views: Vec<HookView> = hooks
        .iter()
        .map(|(hook, log)| HookView {
            hook: WebhookResponse::of(hook, None),
            deliveries: log.iter().map(DeliveryResponse::from).collect(),
        })
        .collect();
    let boxes: Vec<EventBox> = form
        .boxes()
        .into_iter()
        .map(|(kind, field, checked)| EventBox {
            name: kind.as_str(),
            field,
            checked,
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("hooks", &views);
    page.insert("form", form);
    page.insert("event_types", &boxes);
    page.insert("error", &error);
    page.insert("created", &created);
    render(state, status, "fleet_webhooks.html", &page)
}

/// `GET /fleet/webhooks`
pub async fn get_webhooks(state: web::Data<AppState>, user: WebCustomer) -> Result<HttpResponse, PageError> {
    let form = WebhookForm {
        anomaly: Some("on".into()),
        emergency: Some("on".into()),
        ..WebhookForm::default()
    };
    webhooks_page(&state, &user.0, StatusCode::OK, &form, None, None).await
}

/// `POST /fleet/webhooks`: registers a webhook and shows its secret once.
pub async fn post_webhook(
    state: web::Data<AppState>,
    form: CustomerAdminForm<WebhookForm>,
) -> Result<HttpResponse, PageError> {
    let draft = WebhookDraft {
        url: form.fields.url.clone(),
        events: form
            .fields
            .boxes()
            .into_iter()
            .filter(|(_, _, checked)| *checked)
            .map(|(kind, _, _)| kind.as_str().to_owned())
            .collect(),
    };
    match webhooks::register(&state, &form.user.caller(), draft).await {
        Ok((_, secret)) => {
            webhooks_page(
                &state,
                &form.user,
                StatusCode::CREATED,
                &WebhookForm::default(),
                None,
                Some(&secret),
            )
            .await
        }
        Err(err @ (ServiceError::Invalid { .. } | ServiceError::Conflict(_) | ServiceError::OverCap(_))) => {
            let message = err.to_string();
            webhooks_page(
                &state,
                &form.user,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form.fields,
                Some(&message),
                None,
            )
            .await
        }
        Err(err) => Err(page_error(&state, err)),
    }
}

/// `POST /fleet/webhooks/{id}/delete`
pub async fn post_webhook_delete(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    webhooks::delete(&state, &form.user.caller(), id.into_inner())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/webhooks"))
}

/// `POST /fleet/webhooks/{id}/ping`
pub async fn post_webhook_ping(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    webhooks::ping(&state, &form.user.caller(), id.into_inner())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/webhooks"))
}

/// `POST /fleet/webhooks/{id}/deliveries/{delivery}/retry`: sends a delivery again.
pub async fn post_delivery_retry(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, delivery) = path.into_inner();
    webhooks::send_again(&state, &form.user.caller(), id, delivery)
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/webhooks"))
}
