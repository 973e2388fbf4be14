//! `POST /api/v1/query`: which published advisories affect product P at version V,
//! and which release on V's train fixes each — the OSV query for vendor versions.

use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::api::advisories::AdvisorySummary;
use crate::error::AppError;
use crate::services::advisories::{self};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub product: String,
    pub version: String,
}

#[derive(Serialize)]
pub struct QueryMatch {
    #[serde(flatten)]
    pub advisory: AdvisorySummary,
    pub cves: Vec<String>,
    /// The nearest release on the queried version's train that fixes it.
    pub fixed_version: Option<String>,
    /// Fixed releases on other trains.
    pub other_fixed_versions: Vec<String>,
}

#[derive(Serialize)]
pub struct QueryResponse {
    pub product: String,
    pub version: String,
    pub affected: bool,
    pub advisories: Vec<QueryMatch>,
}

pub async fn query(
    state: web::Data<AppState>,
    caller: crate::auth::MaybeUser,
    body: web::Json<QueryRequest>,
) -> Result<web::Json<QueryResponse>, AppError> {
    let QueryRequest { product, version } = body.into_inner();
    let (product_slug, version_text, found) = advisories::affecting(&state, caller.reader(), product, version).await?;
    let mut advisories: Vec<QueryMatch> = found
        .into_iter()
        .map(|(record, cves, finding)| QueryMatch {
            advisory: AdvisorySummary::of(&state.config, &record),
            cves,
            fixed_version: finding.fixed_on_train.map(|v| v.to_string()),
            other_fixed_versions: finding.fixed_elsewhere.iter().map(ToString::to_string).collect(),
        })
        .collect();
    advisories.sort_by_key(|a| std::cmp::Reverse(a.advisory.updated));
    Ok(web::Json(QueryResponse {
        product: product_slug,
        version: version_text,
        affected: !advisories.is_empty(),
        advisories,
    }))
}
