//! Advisory lists as the API sends them: the list query and its parsed form, and the
//! summary of one advisory.

use crate::domain::Reader;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::models::utc;
use crate::db::models::{AdvisoryFilter, AdvisoryRecord};
use crate::domain::advisory::parse_cve;
use crate::domain::cvss::Severity;
use crate::services::advisories::ListRequest;
use crate::services::ServiceError;

type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub product: Option<String>,
    pub severity: Option<String>,
    pub cve: Option<String>,
    pub q: Option<String>,
    pub emergency: Option<bool>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl ListQuery {
    /// The list request of `reader`: restricted advisories appear only to those they are for.
    pub fn parse(&self, reader: Reader) -> Result<ListRequest, ServiceError> {
        let non_empty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let severity = non_empty(&self.severity)
            .map(|s| s.to_lowercase().parse::<Severity>().map(|s| s.as_str().to_owned()))
            .transpose()
            .map_err(|e| ServiceError::invalid("severity", e))?;
        let cve = non_empty(&self.cve)
            .map(|c| parse_cve(&c))
            .transpose()
            .map_err(|e| ServiceError::invalid("cve", e))?;
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 || page > 100_000 {
            return Err(ServiceError::invalid("page", "page counts from 1"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ServiceError::invalid("per_page", "per_page is 1 to 100"));
        }
        let text = non_empty(&self.q);
        if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
            return Err(ServiceError::invalid("q", "the search text is at most 200 characters"));
        }
        Ok(ListRequest {
            filter: AdvisoryFilter {
                reader,
                product: non_empty(&self.product),
                severity,
                cve,
                text,
                emergency: self.emergency.filter(|e| *e),
            },
            page,
            per_page,
        })
    }
}

#[derive(Serialize, Deserialize)]
pub struct AdvisorySummary {
    pub id: String,
    pub title: String,
    pub status: String,
    pub severity: Option<String>,
    pub score: Option<f64>,
    pub emergency: bool,
    pub known_exploited: bool,
    pub fix_deadline: Option<Timestamp>,
    pub revision: i32,
    pub published: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub url: String,
}

impl AdvisorySummary {
    pub fn of(config: &Config, record: &AdvisoryRecord) -> Self {
        let id = record.public_id.clone().unwrap_or_else(|| record.id.to_string());
        AdvisorySummary {
            url: config.url(&format!("/api/v1/advisories/{id}")),
            id,
            title: record.title.clone(),
            status: record.status.as_str().to_owned(),
            severity: record.severity.clone(),
            score: record.score_tenths.map(|t| f64::from(t) / 10.0),
            emergency: record.emergency,
            known_exploited: record.known_exploited,
            fix_deadline: record.fix_deadline.map(utc),
            revision: record.latest_revision,
            published: record.first_published_at.map(utc),
            updated: record.last_published_at.map(utc),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct AdvisoryList {
    pub advisories: Vec<AdvisorySummary>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}
