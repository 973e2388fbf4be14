//! Fleet bodies as the API sends and takes them: devices, enrolment tokens, install
//! reports, exposure (JSON and CSV), and the poll answer. Shared by the API
//! handlers, the pages and the device agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::device::{Offer, PollResponse};
use crate::db::models::{utc, DeviceRecord, EnrollmentToken, ObservationRecord, ReportRecord};
use crate::domain::fleet::Labels;
use crate::services::fleet::devices::{DeviceDetail, Enrolled, ListQuery};
use crate::services::fleet::exposure::{Counts, ExposedDevice, Exposure, ExposureQuery, Keyset, StateFilter};
use crate::services::fleet::screens::DeviceListQuery;
use crate::services::ServiceError;

pub use crate::services::fleet::devices::{DeviceDraft, EnrollmentTokenDraft, SelfEnrolment};
pub use crate::services::fleet::poll::{PollRequest, ReportRequest};

type Timestamp = chrono::DateTime<chrono::Utc>;

/// A device's latest install report.
#[derive(Debug, Serialize, Deserialize)]
pub struct LatestReport {
    pub patch_id: String,
    pub state: String,
    pub at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceResponse {
    pub id: String,
    pub name: String,
    pub customer: String,
    pub product: String,
    pub platform: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub version: Option<String>,
    pub image_sha256: Option<String>,
    pub version_source: Option<String>,
    pub last_seen_at: Option<Timestamp>,
    pub report: Option<LatestReport>,
    pub created_at: Timestamp,
    pub decommissioned_at: Option<Timestamp>,
    /// How old the newest genuine tree head the device holds was, as it last said.
    pub head_age_s: Option<i64>,
    /// Since when the device has said it is stale: cut off from genuine answers.
    pub stale_since: Option<Timestamp>,
}

impl DeviceResponse {
    pub fn of(device: &DeviceRecord, customer: &str, product: &str) -> Result<Self, ServiceError> {
        let labels = device.labels.as_map().clone();
        let report = match (&device.report_patch_id, device.report_state.0, device.report_at) {
            (Some(patch), Some(state), Some(at)) => Some(LatestReport {
                patch_id: patch.to_string(),
                state: state.to_string(),
                at: utc(at),
            }),
            _ => None,
        };
        Ok(DeviceResponse {
            id: device.id.to_string(),
            name: device.name.clone(),
            customer: customer.to_owned(),
            product: product.to_owned(),
            platform: device.platform.clone(),
            labels,
            version: device.version.clone(),
            image_sha256: device.image_sha256.clone(),
            version_source: device.version_source.0.map(|s| s.to_string()),
            last_seen_at: device.last_seen_at.map(utc),
            report,
            created_at: utc(device.created_at),
            decommissioned_at: device.decommissioned_at.map(utc),
            head_age_s: device.head_age_s,
            stale_since: device.stale_since.map(utc),
        })
    }
}

/// A device just enrolled: its token is shown here once. The device's fields,
/// `id` among them, appear once each beside the token.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrolledResponse {
    pub token: String,
    #[serde(flatten)]
    pub device: DeviceResponse,
}

impl EnrolledResponse {
    pub fn of(enrolled: &Enrolled) -> Result<Self, ServiceError> {
        Ok(EnrolledResponse {
            token: enrolled.token.plaintext().to_owned(),
            device: DeviceResponse::of(&enrolled.device, &enrolled.customer, &enrolled.product)?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceResponse>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ObservationResponse {
    pub version: String,
    pub image_sha256: Option<String>,
    pub source: String,
    pub last_source: String,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub times: i64,
}

impl From<&ObservationRecord> for ObservationResponse {
    fn from(o: &ObservationRecord) -> Self {
        ObservationResponse {
            version: o.version.clone(),
            image_sha256: o.image_sha256.clone(),
            source: o.source.to_string(),
            last_source: o.last_source.to_string(),
            first_seen_at: utc(o.first_seen_at),
            last_seen_at: utc(o.last_seen_at),
            times: o.times,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportResponse {
    pub id: String,
    pub patch_id: String,
    pub patch_version: Option<String>,
    pub state: String,
    pub version: Option<String>,
    pub message: Option<String>,
    pub reported_at: Timestamp,
    /// How often the device reported this step in a row.
    #[serde(default)]
    pub times: u32,
    /// When it last reported it again, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reported_at: Option<Timestamp>,
}

impl ReportResponse {
    pub fn of(report: &ReportRecord, patch_version: Option<&str>) -> Self {
        ReportResponse {
            id: report.id.to_string(),
            patch_id: report.patch_id.to_string(),
            patch_version: patch_version.map(str::to_owned),
            state: report.state.to_string(),
            version: report.version.clone(),
            message: report.message.clone(),
            reported_at: utc(report.reported_at),
            times: u32::try_from(report.times).unwrap_or(1),
            last_reported_at: report.last_reported_at.map(utc),
        }
    }
}

/// One device with its history, newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceDetailResponse {
    #[serde(flatten)]
    pub device: DeviceResponse,
    pub observations: Vec<ObservationResponse>,
    pub pull: Option<crate::api::events::PullStatusResponse>,
    pub pull_failures: Vec<crate::api::events::PullFailureResponse>,
    pub anomalies: Vec<crate::api::events::AnomalyResponse>,
    pub reports: Vec<ReportResponse>,
}

impl DeviceDetailResponse {
    pub fn of(detail: &DeviceDetail) -> Result<Self, ServiceError> {
        Ok(DeviceDetailResponse {
            device: DeviceResponse::of(&detail.device, &detail.customer, &detail.product.slug)?,
            observations: detail.observations.iter().map(ObservationResponse::from).collect(),
            pull: detail.pull.as_ref().map(Into::into),
            pull_failures: detail.pull_failures.iter().map(Into::into).collect(),
            anomalies: detail.anomalies.iter().map(Into::into).collect(),
            reports: detail
                .reports
                .iter()
                .map(|(r, version)| ReportResponse::of(r, Some(version)))
                .collect(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollmentTokenResponse {
    pub id: String,
    pub label: String,
    pub max_uses: i32,
    pub uses: i32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl EnrollmentTokenResponse {
    pub fn of(token: &EnrollmentToken, plaintext: Option<&str>) -> Self {
        EnrollmentTokenResponse {
            id: token.id.to_string(),
            label: token.label.clone(),
            max_uses: token.max_uses,
            uses: token.uses,
            created_at: utc(token.created_at),
            expires_at: utc(token.expires_at),
            revoked_at: token.revoked_at.map(utc),
            token: plaintext.map(str::to_owned),
        }
    }
}

/// The query of a device list or an exposure.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    pub advisory: Option<String>,
    pub state: Option<String>,
    pub label: Option<String>,
    pub version: Option<String>,
    pub customer: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl FleetQuery {
    /// The page and page size, checked.
    pub fn paging(&self) -> Result<(u32, u32), ServiceError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
        if page == 0 {
            return Err(ServiceError::invalid("page", "page starts at 1"));
        }
        if !(1..=500).contains(&per_page) {
            return Err(ServiceError::invalid("per_page", "per_page is 1 to 500"));
        }
        Ok((page, per_page))
    }

    /// The exposure query this asks for.
    pub fn exposure(&self, everything: bool) -> Result<ExposureQuery, ServiceError> {
        let (page, per_page) = self.paging()?;
        let state = self
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<StateFilter>().map_err(|e| ServiceError::invalid("state", e)))
            .transpose()?;
        Ok(ExposureQuery {
            customer: self.customer.clone().filter(|c| !c.is_empty()),
            state,
            page,
            per_page,
            everything,
            label: self.label()?,
            version: self.version.clone().filter(|v| !v.is_empty()),
            keyset: None,
        })
    }

    /// The device list screen's query, a keyset page.
    pub fn device_list(&self, keyset: Keyset) -> Result<DeviceListQuery, ServiceError> {
        let exposure = self.exposure(false)?;
        Ok(DeviceListQuery {
            advisory: self.advisory.clone().filter(|a| !a.is_empty()),
            state: exposure.state,
            list: ListQuery {
                customer: exposure.customer,
                label: exposure.label,
                version: exposure.version,
                page: exposure.page,
                per_page: exposure.per_page,
                keyset: Some(keyset),
            },
        })
    }

    pub fn label(&self) -> Result<Option<(String, String)>, ServiceError> {
        self.label
            .as_deref()
            .filter(|l| !l.is_empty())
            .map(|l| Labels::parse_pair(l).map_err(|e| ServiceError::invalid("label", e)))
            .transpose()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExposedDeviceResponse {
    #[serde(flatten)]
    pub device: DeviceResponse,
    pub state: String,
    pub overdue: bool,
    pub claimed_not_running: bool,
    pub stalled: bool,
}

impl ExposedDeviceResponse {
    pub fn of(exposed: &ExposedDevice) -> Result<Self, ServiceError> {
        Ok(ExposedDeviceResponse {
            device: DeviceResponse::of(&exposed.device, &exposed.customer, &exposed.product)?,
            state: exposed.state.to_string(),
            overdue: exposed.overdue,
            claimed_not_running: exposed.claimed_not_running,
            stalled: exposed.stalled,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CustomerCountsResponse {
    pub customer: String,
    #[serde(flatten)]
    pub counts: CountsBody,
}

/// The counts of an exposure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsBody {
    pub affected: i64,
    pub fixed: i64,
    pub unaffected: i64,
    pub unknown: i64,
    pub overdue: i64,
    pub claimed_not_running: i64,
    pub stalled: i64,
}

impl From<Counts> for CountsBody {
    fn from(c: Counts) -> Self {
        CountsBody {
            affected: c.affected,
            fixed: c.fixed,
            unaffected: c.unaffected,
            unknown: c.unknown,
            overdue: c.overdue,
            claimed_not_running: c.claimed_not_running,
            stalled: c.stalled,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExposureResponse {
    pub advisory: String,
    pub title: String,
    pub emergency: bool,
    pub fix_deadline: Option<Timestamp>,
    #[serde(flatten)]
    pub counts: CountsBody,
    /// Per customer (the vendor sees every customer, grouped).
    pub customers: Vec<CustomerCountsResponse>,
    pub devices: Vec<ExposedDeviceResponse>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

impl ExposureResponse {
    pub fn of(exposure: &Exposure, query: &ExposureQuery) -> Result<Self, ServiceError> {
        Ok(ExposureResponse {
            advisory: exposure.public_id.clone(),
            title: exposure.advisory.title.clone(),
            emergency: exposure.emergency,
            fix_deadline: exposure.fix_deadline,
            counts: exposure.counts.into(),
            customers: exposure
                .customers
                .iter()
                .map(|c| CustomerCountsResponse {
                    customer: c.customer.clone(),
                    counts: c.counts.into(),
                })
                .collect(),
            devices: exposure
                .devices
                .iter()
                .map(ExposedDeviceResponse::of)
                .collect::<Result<_, _>>()?,
            total: exposure.matching,
            page: query.page,
            per_page: query.per_page,
        })
    }
}

/// A CSV field, quoted when it must be, and defused when a spreadsheet would read it
/// as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The devices of an exposure as CSV, one line each, with a header.
pub fn exposure_csv(exposure: &Exposure) -> String {
    let mut out = String::from(
        "advisory,customer,device_id,name,product,platform,version,state,overdue,claimed_not_running,stalled,last_seen_at\n",
    );
    for d in &exposure.devices {
        let fields = [
            exposure.public_id.clone(),
            d.customer.clone(),
            d.device.id.to_string(),
            d.device.name.clone(),
            d.product.clone(),
            d.device.platform.clone().unwrap_or_default(),
            d.device.version.clone().unwrap_or_default(),
            d.state.to_string(),
            d.overdue.to_string(),
            d.claimed_not_running.to_string(),
            d.stalled.to_string(),
            d.device.last_seen_at.map(|t| utc(t).to_rfc3339()).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}
