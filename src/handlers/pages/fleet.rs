//! The fleet screens. Every signed-in user sees the fleet its scope covers — a
//! customer admin its own, the vendor every customer's (or one, with `?customer=`):
//! the dashboard of advisories that concern it with their adoption charts, the
//! device list with its filters, and a device's page with its version timeline and
//! install reports. Customer admins also enrol and decommission devices and manage
//! enrolment tokens here.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::api::events::{
    Acknowledgement, AnomalyResponse, DeliveryResponse, PullFailureResponse, PullStatusResponse, WebhookDraft,
    WebhookResponse,
};
use crate::api::fleet::{DeviceDraft, DeviceResponse, EnrollmentTokenDraft, EnrollmentTokenResponse, FleetQuery};
use crate::auth::{AuthUser, CsrfForm, CustomerAdminForm, WebCustomer, WebUser};
use crate::db::models::utc;
use crate::domain::fleet::Labels;
use crate::domain::EventType;
use crate::error::{AppError, PageError};
use crate::http::chart;
use crate::http::pages::{context, form_error, render, see_other, NoFields};
use crate::services::anomalies;
use crate::services::fleet::devices;
use crate::services::fleet::screens::{self, DeviceListPage};
use crate::services::pulls;
use crate::services::webhooks;
use crate::services::ServiceError;
use crate::state::AppState;

#[derive(Serialize)]
struct Counts {
    affected: i64,
    fixed: i64,
    unaffected: i64,
    unknown: i64,
    overdue: i64,
    claimed_not_running: i64,
    stalled: i64,
}

#[derive(Serialize)]
struct AdvisoryCard {
    id: String,
    title: String,
    emergency: bool,
    fix_deadline: Option<String>,
    counts: Counts,
    chart: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    #[serde(default)]
    customer: Option<String>,
}

fn page_error(state: &AppState, err: impl Into<AppError>) -> PageError {
    PageError::with_state(state, err)
}

/// A device that says it is cut off from genuine answers.
#[derive(Serialize)]
struct StaleRow {
    id: String,
    name: String,
    since: String,
    head_age: Option<String>,
}

/// An age in seconds as a person reads it: `3 h 12 min`, `45 min`, `20 s`.
fn age_text(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `GET /fleet`: the advisories that concern the fleet, emergencies first.
pub async fn get_dashboard(
    state: web::Data<AppState>,
    user: WebUser,
    query: web::Query<DashboardQuery>,
) -> Result<HttpResponse, PageError> {
    let customer = query.into_inner().customer.filter(|c| !c.is_empty());
    let overview = screens::overview(&state, &user.0.scope, customer.clone())
        .await
        .map_err(|e| page_error(&state, e))?;
    let cards: Vec<AdvisoryCard> = overview
        .advisories
        .iter()
        .map(|e| AdvisoryCard {
            id: e.public_id.clone(),
            title: e.advisory.title.clone(),
            emergency: e.emergency,
            fix_deadline: e.fix_deadline.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
            counts: Counts {
                affected: e.counts.affected,
                fixed: e.counts.fixed,
                unaffected: e.counts.unaffected,
                unknown: e.counts.unknown,
                overdue: e.counts.overdue,
                claimed_not_running: e.counts.claimed_not_running,
                stalled: e.counts.stalled,
            },
            chart: chart::adoption(&e.history),
        })
        .collect();
    let anomalies: Vec<AnomalyResponse> = overview.anomalies.iter().map(AnomalyResponse::from).collect();
    let stale: Vec<StaleRow> = overview
        .stale
        .iter()
        .map(|d| StaleRow {
            id: d.id.to_string(),
            name: d.name.clone(),
            since: d
                .stale_since
                .map(|t| utc(t).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            head_age: d.head_age_s.map(age_text),
        })
        .collect();
    let mut page = context(Some(&user.0));
    page.insert("stale", &stale);
    page.insert("advisories", &cards);
    page.insert("anomalies", &anomalies);
    page.insert("customer", &customer);
    page.insert("is_customer", &user.customer().is_some());
    render(&state, StatusCode::OK, "fleet_dashboard.html", &page)
}

#[derive(Serialize)]
struct DeviceLine {
    id: String,
    name: String,
    customer: String,
    product: String,
    version: Option<String>,
    last_seen_at: Option<String>,
    report: Option<String>,
    state: Option<String>,
    overdue: bool,
    claimed_not_running: bool,
    stalled: bool,
}

/// The device form as typed: labels as `name=value` lines.
#[derive(Deserialize, Serialize, Default)]
pub struct DeviceForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    pull_url: String,
    #[serde(default)]
    pull_schedule: String,
    /// Never echoed back into the form.
    #[serde(default, skip_serializing)]
    pull_token: String,
}

impl DeviceForm {
    fn draft(&self) -> Result<DeviceDraft, ServiceError> {
        let mut labels = std::collections::BTreeMap::new();
        for line in self.labels.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (name, value) = Labels::parse_pair(line).map_err(|e| ServiceError::invalid("labels", e))?;
            labels.insert(name, value);
        }
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(DeviceDraft {
            name: self.name.clone(),
            product: self.product.trim().to_owned(),
            platform: given(&self.platform),
            version: given(&self.version),
            labels,
            pull_url: given(&self.pull_url),
            pull_schedule: given(&self.pull_schedule),
            pull_token: given(&self.pull_token),
        })
    }
}

/// What the device list shows after an enrolment: the new device's token, once.
#[derive(Serialize)]
struct NewToken {
    name: String,
    token: String,
}

struct ListView<'a> {
    query: &'a FleetQuery,
    form: &'a DeviceForm,
    error: Option<&'a str>,
    enrolled: Option<NewToken>,
}

async fn list_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    view: ListView<'_>,
) -> Result<HttpResponse, PageError> {
    let request = view.query.device_list().map_err(|e| page_error(state, e))?;
    let (page_number, per_page) = (request.list.page, request.list.per_page);
    let DeviceListPage {
        rows,
        total,
        advisories,
    } = screens::device_list(state, &user.scope, request)
        .await
        .map_err(|e| page_error(state, e))?;
    let lines: Vec<DeviceLine> = rows
        .into_iter()
        .map(|row| {
            let (device, customer, product) = row.named;
            DeviceLine {
                id: device.id.to_string(),
                name: device.name,
                customer,
                product,
                version: device.version,
                last_seen_at: device
                    .last_seen_at
                    .map(|t| utc(t).format("%Y-%m-%d %H:%M:%S").to_string()),
                report: device.report_state.0.map(|s| s.to_string()),
                state: row.state.map(|s| s.to_string()),
                overdue: row.overdue,
                claimed_not_running: row.claimed_not_running,
                stalled: row.stalled,
            }
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("devices", &lines);
    page.insert("total", &total);
    page.insert("page", &page_number);
    page.insert(
        "pages",
        &((total + i64::from(per_page) - 1) / i64::from(per_page)).max(1),
    );
    page.insert("advisories", &advisories);
    let filter = |v: &Option<String>| v.clone().unwrap_or_default();
    page.insert("f_advisory", &filter(&view.query.advisory));
    page.insert("f_state", &filter(&view.query.state));
    page.insert("f_label", &filter(&view.query.label));
    page.insert("f_version", &filter(&view.query.version));
    page.insert("f_customer", &filter(&view.query.customer));
    page.insert("is_customer", &user.scope.customer().is_some());
    page.insert("form", view.form);
    page.insert("error", &view.error);
    page.insert("enrolled", &view.enrolled);
    render(state, status, "fleet_devices.html", &page)
}

/// `GET /fleet/devices`
pub async fn get_devices(
    state: web::Data<AppState>,
    user: WebUser,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, PageError> {
    let view = ListView {
        query: &query,
        form: &DeviceForm::default(),
        error: None,
        enrolled: None,
    };
    list_page(&state, &user.0, StatusCode::OK, view).await
}

/// `POST /fleet/devices`: enrols a device; the answer shows its token once.
pub async fn post_device(
    state: web::Data<AppState>,
    form: CustomerAdminForm<DeviceForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let query = FleetQuery::default();
    let enrolled = match fields.draft() {
        Ok(draft) => devices::enrol(&state, &user.caller(), draft).await,
        Err(err) => Err(err),
    };
    match enrolled {
        Ok(enrolled) => {
            let view = ListView {
                query: &query,
                form: &DeviceForm::default(),
                error: None,
                enrolled: Some(NewToken {
                    name: enrolled.device.name.clone(),
                    token: enrolled.token.plaintext().to_owned(),
                }),
            };
            list_page(&state, &user, StatusCode::CREATED, view).await
        }
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            let view = ListView {
                query: &query,
                form: &fields,
                error: Some(&message),
                enrolled: None,
            };
            list_page(&state, &user, status, view).await
        }
    }
}

#[derive(Serialize)]
struct TimelineRow {
    version: String,
    image_sha256: Option<String>,
    source: String,
    last_source: String,
    first_seen_at: String,
    last_seen_at: String,
    times: i64,
}

#[derive(Serialize)]
struct ReportRow {
    state: String,
    patch_id: String,
    patch_version: String,
    version: Option<String>,
    message: Option<String>,
    reported_at: String,
}

/// `GET /fleet/devices/{id}`: the device with its version timeline and reports.
pub async fn get_device(
    state: web::Data<AppState>,
    user: WebUser,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let detail = devices::detail(&state, &user.0.scope, id.into_inner())
        .await
        .map_err(|e| page_error(&state, e))?;
    let device = DeviceResponse::of(&detail.device, &detail.customer, &detail.product.slug)
        .map_err(|e| page_error(&state, e))?;
    let when = |t: chrono::NaiveDateTime| utc(t).format("%Y-%m-%d %H:%M:%S").to_string();
    let timeline: Vec<TimelineRow> = detail
        .observations
        .iter()
        .map(|o| TimelineRow {
            version: o.version.clone(),
            image_sha256: o.image_sha256.clone(),
            source: o.source.to_string(),
            last_source: o.last_source.to_string(),
            first_seen_at: when(o.first_seen_at),
            last_seen_at: when(o.last_seen_at),
            times: o.times,
        })
        .collect();
    let reports: Vec<ReportRow> = detail
        .reports
        .iter()
        .map(|(r, patch_version)| ReportRow {
            state: r.state.to_string(),
            patch_id: r.patch_id.to_string(),
            patch_version: patch_version.clone(),
            version: r.version.clone(),
            message: r.message.clone(),
            reported_at: when(r.reported_at),
        })
        .collect();
    let pull = detail.pull.as_ref().map(PullStatusResponse::from);
    let pull_failures: Vec<PullFailureResponse> = detail.pull_failures.iter().map(Into::into).collect();
    let anomalies: Vec<AnomalyResponse> = detail.anomalies.iter().map(Into::into).collect();
    let head_age = detail.device.head_age_s.map(age_text);
    let mut page = context(Some(&user.0));
    page.insert("head_age", &head_age);
    page.insert("pull", &pull);
    page.insert("pull_failures", &pull_failures);
    page.insert("anomalies", &anomalies);
    page.insert("device", &device);
    page.insert("timeline", &timeline);
    page.insert("reports", &reports);
    page.insert("is_customer", &user.customer().is_some());
    render(&state, StatusCode::OK, "fleet_device.html", &page)
}

/// `POST /fleet/devices/{id}/decommission`
pub async fn post_decommission(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    devices::decommission(&state, &form.user.caller(), id.clone())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other(&format!("/fleet/devices/{id}")))
}

/// `POST /fleet/devices/{id}/pull`: pulls the device now, then shows its page.
pub async fn post_pull(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    pulls::pull_now(&state, &form.user.scope, id.clone())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other(&format!("/fleet/devices/{id}")))
}

/// The acknowledgement form.
#[derive(Deserialize)]
pub struct AckForm {
    #[serde(default)]
    comment: String,
}

/// `POST /fleet/anomalies/{id}/ack`: acknowledges an anomaly, then shows its device.
pub async fn post_ack(
    state: web::Data<AppState>,
    form: CustomerAdminForm<AckForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let ack = Acknowledgement {
        comment: form.fields.comment.clone(),
    };
    let listed = anomalies::acknowledge(&state, &form.user.caller(), id.into_inner(), ack)
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other(&format!("/fleet/devices/{}", listed.anomaly.device_id)))
}

/// The enrolment-token form.
#[derive(Deserialize, Serialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    expires_in: String,
}

async fn tokens_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &TokenForm,
    error: Option<&str>,
    created: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let tokens = devices::enrollment_tokens(state, &user.caller())
        .await
        .map_err(|e| page_error(state, e))?;
    let rows: Vec<EnrollmentTokenResponse> = tokens.iter().map(|t| EnrollmentTokenResponse::of(t, None)).collect();
    let mut page = context(Some(user));
    page.insert("tokens", &rows);
    page.insert("form", form);
    page.insert("error", &error);
    page.insert("created", &created);
    render(state, status, "fleet_tokens.html", &page)
}

/// `GET /fleet/enrollment-tokens`
pub async fn get_tokens(state: web::Data<AppState>, user: WebCustomer) -> Result<HttpResponse, PageError> {
    tokens_page(&state, &user.0, StatusCode::OK, &TokenForm::default(), None, None).await
}

/// `POST /fleet/enrollment-tokens`: creates a token; the answer shows it once.
pub async fn post_token(
    state: web::Data<AppState>,
    form: CustomerAdminForm<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let max_uses = match fields.max_uses.trim() {
        "" => Ok(None),
        text => text
            .parse::<i32>()
            .map(Some)
            .map_err(|_| ServiceError::invalid("max_uses", "max_uses must be a whole number")),
    };
    let created = match max_uses {
        Ok(max_uses) => {
            let draft = EnrollmentTokenDraft {
                label: Some(fields.label.clone()),
                max_uses,
                expires_in: Some(fields.expires_in.trim().to_owned()).filter(|s| !s.is_empty()),
            };
            devices::create_enrollment_token(&state, &user.caller(), draft).await
        }
        Err(err) => Err(err),
    };
    match created {
        Ok((_, issued)) => {
            tokens_page(
                &state,
                &user,
                StatusCode::CREATED,
                &TokenForm::default(),
                None,
                Some(issued.plaintext()),
            )
            .await
        }
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            tokens_page(&state, &user, status, &fields, Some(&message), None).await
        }
    }
}

/// `POST /fleet/enrollment-tokens/{id}/revoke`
pub async fn post_token_revoke(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    devices::revoke_enrollment_token(&state, &form.user.caller(), id.into_inner())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/enrollment-tokens"))
}

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
}

impl WebhookForm {
    /// Each event with its box's name and whether it is ticked.
    fn boxes(&self) -> [(EventType, &'static str, bool); 6] {
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
        Err(err @ (ServiceError::Invalid { .. } | ServiceError::Conflict(_))) => {
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
