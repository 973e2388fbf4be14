//! Extractor configuration: body size limits and the JSON, form, path and query
//! error handlers, so that every malformed request is answered in the contract's
//! error format with a status that names the problem (400, 413, 415 or 422).

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError};
use actix_web::{web, HttpRequest};

use crate::error::AppError;

/// The extractor configs for an app with the given body limit.
pub fn configs(limit: usize) -> (web::JsonConfig, web::FormConfig, web::PathConfig, web::QueryConfig) {
    let json = web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req: &HttpRequest| json_error(err, limit).into());
    let form = web::FormConfig::default()
        .limit(limit)
        .error_handler(move |err, _req: &HttpRequest| form_error(err, limit).into());
    let path = web::PathConfig::default()
        .error_handler(|_err: PathError, _req: &HttpRequest| AppError::NotFound("resource").into());
    let query = web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        AppError::BadRequest(format!("bad query string: {err}")).into()
    });
    (json, form, path, query)
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge(format!("the request body is larger than the limit of {limit} bytes"))
}

fn json_error(err: JsonPayloadError, limit: usize) -> AppError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => too_large(limit),
        JsonPayloadError::ContentType => {
            AppError::UnsupportedMediaType("the body must be JSON (Content-Type: application/json)".into())
        }
        JsonPayloadError::Deserialize(err) if err.is_data() => AppError::Invalid {
            field: None,
            message: format!("invalid body: {err}"),
        },
        JsonPayloadError::Deserialize(err) => AppError::BadRequest(format!("malformed JSON: {err}")),
        other => AppError::BadRequest(format!("the body could not be read: {other}")),
    }
}

fn form_error(err: UrlencodedError, limit: usize) -> AppError {
    match err {
        UrlencodedError::Overflow { .. } => too_large(limit),
        UrlencodedError::ContentType => AppError::UnsupportedMediaType(
            "the body must be a form (Content-Type: application/x-www-form-urlencoded)".into(),
        ),
        other => AppError::BadRequest(format!("the form could not be read: {other}")),
    }
}

/// A JSON body that may be left out, every field of `T` having a default: an empty
/// body is `None`; anything else must be exactly the JSON of `T` — malformed JSON is
/// a 400, and an unknown field or a value of the wrong type a 422 naming the field.
/// (Actix's optional JSON extractor would read a malformed body as no body at all.)
pub fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| AppError::BadRequest(format!("malformed JSON: {err}")))?;
    match serde_json::from_value::<T>(value.clone()) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(err) => {
            // Every field has a default, so each one can be tried alone: the first
            // that fails is the one to name.
            let field = value.as_object().and_then(|object| {
                object.iter().find_map(|(name, field)| {
                    let alone = serde_json::Value::Object([(name.clone(), field.clone())].into_iter().collect());
                    serde_json::from_value::<T>(alone).is_err().then(|| name.clone())
                })
            });
            Err(AppError::Invalid {
                message: match &field {
                    Some(name) => format!("{name}: {err}"),
                    None => format!("invalid body: {err}"),
                },
                field,
            })
        }
    }
}

/// The body length the client announced in `Content-Length`, if any.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
