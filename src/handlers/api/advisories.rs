//! Advisories over the API: vendor routes to draft, edit, publish, revise and
//! withdraw; public routes that list published advisories and serve every revision
//! as the exact bytes that were signed, with its `.minisig`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::advisories::{AdvisoryList, AdvisorySummary, ListQuery};
use crate::api::log::Logged;
use crate::auth::{MaybeUser, VendorUser};
use crate::db::models::utc;
use crate::db::models::{AdvisoryRecord, RevisionRecord};
use crate::domain::advisory::AdvisoryInput;
use crate::error::AppError;
use crate::secrets::sha256_hex;
use crate::services::advisories::{self, published_revision, SignAction};
use crate::state::AppState;

type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Serialize)]
pub struct DraftResponse {
    pub id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_id: Option<String>,
    pub title: String,
    pub draft: AdvisoryInput,
    pub updated_at: Timestamp,
}

impl DraftResponse {
    fn of(record: &AdvisoryRecord) -> Result<Self, AppError> {
        Ok(DraftResponse {
            id: record.id.to_string(),
            status: record.status.as_str().to_owned(),
            public_id: record.public_id.clone(),
            title: record.title.clone(),
            draft: advisories::current_input(record)?,
            updated_at: utc(record.updated_at),
        })
    }
}

#[derive(Serialize)]
pub struct RevisionResponse {
    pub id: String,
    pub revision: i32,
    pub status: String,
    pub published_at: Timestamp,
    pub change_summary: String,
    pub key_id: String,
    pub sha256: String,
    pub url: String,
    pub signature_url: String,
    /// On a publish answer: the revision's entry in the transparency log and a
    /// signed tree head that includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Logged>,
}

fn revision_response(state: &AppState, public_id: &str, r: &RevisionRecord) -> RevisionResponse {
    let base = state
        .config
        .url(&format!("/api/v1/advisories/{public_id}/revisions/{}", r.revision));
    RevisionResponse {
        id: public_id.to_owned(),
        revision: r.revision,
        status: r.status.as_str().to_owned(),
        published_at: utc(r.published_at),
        change_summary: r.change_summary.clone(),
        key_id: r.key_id.clone(),
        sha256: sha256_hex(r.document.as_bytes()),
        signature_url: format!("{base}/minisig"),
        url: base,
        log: None,
    }
}

/// `POST /api/v1/advisories`: a new draft.
pub async fn create_advisory(
    state: web::Data<AppState>,
    caller: VendorUser,
    body: web::Json<AdvisoryInput>,
) -> Result<HttpResponse, AppError> {
    let record = advisories::create(&state, &caller.0.caller(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(DraftResponse::of(&record)?))
}

/// `PATCH /api/v1/advisories/{id}`: a JSON merge patch of a draft.
pub async fn update_advisory(
    state: web::Data<AppState>,
    _caller: VendorUser,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, AppError> {
    let record = advisories::edit(&state, id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DraftResponse::of(&record)?))
}

/// `GET /api/v1/advisories/{id}/draft`: the editable body (vendors only).
pub async fn get_advisory_draft(
    state: web::Data<AppState>,
    _caller: VendorUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let record = advisories::draft(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DraftResponse::of(&record)?))
}

/// A JSON body that may be left out entirely.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            AppError::Invalid {
                field: None,
                message: format!("invalid body: {e}"),
            }
        } else {
            AppError::BadRequest(format!("malformed JSON: {e}"))
        }
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(default)]
    pub change_summary: String,
}

/// `POST /api/v1/advisories/{id}/publish`
pub async fn publish_advisory(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let change_summary = optional_json::<PublishRequest>(&body)?.change_summary;
    let action = SignAction::Publish { change_summary };
    signed(&state, &caller, id.into_inner(), action).await
}

/// `POST /api/v1/advisories/{id}/revisions`: the full new body and `change_summary`.
pub async fn revise_advisory(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, AppError> {
    let Value::Object(mut fields) = body.into_inner() else {
        return Err(AppError::invalid("", "the body must be a JSON object"));
    };
    let summary = match fields.remove("change_summary") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(AppError::invalid("change_summary", "change_summary must be a string")),
        None => {
            return Err(AppError::invalid(
                "change_summary",
                "change_summary is required: say what this revision changes",
            ))
        }
    };
    let input: AdvisoryInput = serde_json::from_value(Value::Object(fields)).map_err(|e| AppError::Invalid {
        field: None,
        message: format!("invalid body: {e}"),
    })?;
    let action = SignAction::Revise {
        input: Box::new(input),
        change_summary: summary,
    };
    signed(&state, &caller, id.into_inner(), action).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    pub reason: String,
}

/// `POST /api/v1/advisories/{id}/withdraw`
pub async fn withdraw_advisory(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Json<WithdrawRequest>,
) -> Result<HttpResponse, AppError> {
    let action = SignAction::Withdraw {
        reason: body.into_inner().reason,
    };
    signed(&state, &caller, id.into_inner(), action).await
}

async fn signed(
    state: &AppState,
    caller: &VendorUser,
    key: String,
    action: SignAction,
) -> Result<HttpResponse, AppError> {
    let (record, revision, logged) = advisories::sign(state, &caller.0.caller(), key, action).await?;
    let public_id = record.public_id.unwrap_or_default();
    let response = RevisionResponse {
        log: Some(logged),
        ..revision_response(state, &public_id, &revision)
    };
    Ok(HttpResponse::Created().json(response))
}

/// `GET /api/v1/advisories`
pub async fn list_advisories(
    state: web::Data<AppState>,
    caller: MaybeUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let request = query.parse(caller.reader())?;
    let (page, per_page) = (request.page, request.per_page);
    let (records, total) = advisories::list_page(&state, request).await?;
    Ok(HttpResponse::Ok().json(AdvisoryList {
        advisories: records.iter().map(|r| AdvisorySummary::of(&state.config, r)).collect(),
        page,
        per_page,
        total,
    }))
}

/// How long, and who, may keep an advisory's bytes: a restricted one only the
/// reader's own client, never a shared cache.
fn cache_control(record: &AdvisoryRecord, public: &'static str) -> &'static str {
    if record.tlp.restricted() {
        "private, no-store"
    } else {
        public
    }
}

fn document_response(record: &AdvisoryRecord, revision: &RevisionRecord, immutable: bool) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::ETAG,
            format!("\"{}\"", sha256_hex(revision.document.as_bytes())),
        ))
        .insert_header(("x-advisory-revision", revision.revision.to_string()))
        .insert_header((
            header::CACHE_CONTROL,
            cache_control(
                record,
                if immutable {
                    "public, max-age=31536000, immutable"
                } else {
                    "public, max-age=60"
                },
            ),
        ))
        .body(revision.document.clone())
}

fn revision_number(text: &str) -> Result<i32, AppError> {
    text.parse::<i32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or(AppError::NotFound("revision"))
}

/// `GET /api/v1/advisories/{id}`: the latest revision, byte for byte as signed.
pub async fn get_advisory(
    state: web::Data<AppState>,
    caller: MaybeUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (record, revision) = published_revision(&state, caller.reader(), id.into_inner(), None).await?;
    Ok(document_response(&record, &revision, false))
}

/// `GET /api/v1/advisories/{id}/minisig`: the signature of the latest revision.
pub async fn get_advisory_minisig(
    state: web::Data<AppState>,
    caller: MaybeUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (record, revision) = published_revision(&state, caller.reader(), id.into_inner(), None).await?;
    Ok(signature_response(&record, &revision))
}

fn signature_response(record: &AdvisoryRecord, revision: &RevisionRecord) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, cache_control(record, "public, max-age=60")))
        .body(revision.signature.clone())
}

/// `GET /api/v1/advisories/{id}/revisions`
pub async fn list_revisions(
    state: web::Data<AppState>,
    caller: MaybeUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let key = id.into_inner();
    let (record, revisions) = advisories::revisions(&state, caller.reader(), key).await?;
    let public_id = record.public_id.unwrap_or_default();
    let list: Vec<RevisionResponse> = revisions
        .iter()
        .map(|r| revision_response(&state, &public_id, r))
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/v1/advisories/{id}/revisions/{n}`
pub async fn get_revision(
    state: web::Data<AppState>,
    caller: MaybeUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, n) = path.into_inner();
    let (record, revision) = published_revision(&state, caller.reader(), id, Some(revision_number(&n)?)).await?;
    Ok(document_response(&record, &revision, true))
}

/// `GET /api/v1/advisories/{id}/revisions/{n}/minisig`
pub async fn get_revision_minisig(
    state: web::Data<AppState>,
    caller: MaybeUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, n) = path.into_inner();
    let (record, revision) = published_revision(&state, caller.reader(), id, Some(revision_number(&n)?)).await?;
    Ok(signature_response(&record, &revision))
}
