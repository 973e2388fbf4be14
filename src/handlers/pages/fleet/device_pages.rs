//! The device list (with its filters and the enrolment form) and a device's page:
//! its version timeline, install reports, pulls and anomalies; decommissioning, a
//! pull on demand and acknowledging an anomaly.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::page_error;
use crate::api::events::{Acknowledgement, AnomalyResponse, PullFailureResponse, PullStatusResponse};
use crate::api::fleet::{DeviceDraft, DeviceResponse, FleetQuery};
use crate::auth::{AuthUser, CsrfForm, CustomerAdminForm, WebUser};
use crate::db::models::utc;
use crate::db::models::DeviceOrder;
use crate::domain::fleet::Labels;
use crate::error::PageError;
use crate::http::pages::{context, form_error, render, see_other, NoFields};
use crate::services::anomalies;
use crate::services::fleet::devices;
use crate::services::fleet::exposure::Keyset;
use crate::services::fleet::screens::{self, DeviceListPage};
use crate::services::pulls;
use crate::services::ServiceError;
use crate::state::AppState;
use crate::when::span_text;

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

/// The device list screen's query: the fleet filters, an order, and the device the
/// page starts after (a keyset page: as quick at the end of a large fleet as at its
/// start).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceListParams {
    #[serde(default)]
    advisory: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    per_page: Option<u32>,
    #[serde(default)]
    sort: Option<DeviceOrder>,
    #[serde(default)]
    after: Option<String>,
}

impl DeviceListParams {
    fn fleet(&self) -> FleetQuery {
        FleetQuery {
            advisory: self.advisory.clone(),
            state: self.state.clone(),
            label: self.label.clone(),
            version: self.version.clone(),
            customer: self.customer.clone(),
            page: None,
            per_page: self.per_page,
        }
    }

    fn keyset(&self) -> Result<Keyset, ServiceError> {
        let after =
            match self.after.as_deref().filter(|a| !a.is_empty()) {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| {
                    ServiceError::invalid("after", format!("`after` must be a device id, not `{text}`"))
                })?),
            };
        Ok(Keyset {
            order: self.sort.unwrap_or_default(),
            after,
        })
    }

    /// The query string of this list in `order`, from its start, or after `after`
    /// (the template puts it after `/fleet/devices?`).
    fn link(&self, order: DeviceOrder, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("advisory", &self.advisory),
            ("state", &self.state),
            ("label", &self.label),
            ("version", &self.version),
            ("customer", &self.customer),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
        if let Some(per_page) = self.per_page {
            query.append_pair("per_page", &per_page.to_string());
        }
        query.append_pair("sort", order.as_str());
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        query.finish()
    }
}

struct ListView<'a> {
    query: &'a DeviceListParams,
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
    let keyset = view.query.keyset().map_err(|e| page_error(state, e))?;
    let order = keyset.order;
    let request = view
        .query
        .fleet()
        .device_list(keyset)
        .map_err(|e| page_error(state, e))?;
    let per_page = request.list.per_page;
    let DeviceListPage {
        rows,
        total,
        advisories,
    } = screens::device_list(state, &user.scope, request)
        .await
        .map_err(|e| page_error(state, e))?;
    let next = (rows.len() == per_page as usize)
        .then(|| {
            rows.last()
                .map(|row| view.query.link(order, Some(&row.named.0.id.to_string())))
        })
        .flatten();
    let sorts: Vec<(String, &str, bool)> = DeviceOrder::ALL
        .iter()
        .map(|o| (view.query.link(*o, None), o.label(), *o == order))
        .collect();
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
    page.insert("next", &next);
    page.insert(
        "first",
        &view.query.after.as_ref().map(|_| view.query.link(order, None)),
    );
    page.insert("sorts", &sorts);
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
    query: web::Query<DeviceListParams>,
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
    let query = DeviceListParams::default();
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

/// Where the device stands against one advisory, and why.
#[derive(Serialize)]
struct AdvisoryRow {
    id: String,
    title: String,
    emergency: bool,
    exposed: bool,
    state: String,
    why: String,
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
    let head_age = detail.device.head_age_s.map(span_text);
    let advisories: Vec<AdvisoryRow> = detail
        .advisories
        .iter()
        .map(|a| AdvisoryRow {
            id: a.public_id.clone(),
            title: a.title.clone(),
            emergency: a.emergency,
            exposed: a.exposed(),
            state: a.state.to_string(),
            why: a.reasons.join("; "),
        })
        .collect();
    let mut page = context(Some(&user.0));
    page.insert("head_age", &head_age);
    page.insert("advisories", &advisories);
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
