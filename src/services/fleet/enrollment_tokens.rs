//! Enrolment tokens: what a customer admin hands devices so that they enrol
//! themselves — made (the secret shown once), listed, revoked, and checked when
//! spent.

use super::customer_of;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;

use crate::db::models::{now, Customer, EnrollmentToken};
use crate::domain::{parse_duration, text, Caller};
use crate::ids::EnrollmentTokenId;
use crate::secrets::{IssuedToken, ENROLLMENT_TOKEN_PREFIX};
use crate::services::refusals::Cap;
use crate::services::{ServiceError, Services};

/// Rows of history a device page shows.
pub const HISTORY_ROWS: i64 = 200;

/// An enrolment token as a customer admin asks for it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentTokenDraft {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub max_uses: Option<i32>,
    /// How long it stays valid, like `7d` (the default) or `12h`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

pub(super) fn exhausted(token: &EnrollmentToken) -> ServiceError {
    ServiceError::Forbidden(format!(
        "the enrollment token has been used {} of {} times",
        token.uses, token.max_uses
    ))
}

/// Refuses a token that is revoked, expired or used up, saying which.
pub(super) fn usable(token: &EnrollmentToken, at: NaiveDateTime) -> Result<(), ServiceError> {
    if token.revoked_at.is_some() {
        return Err(ServiceError::Forbidden("the enrollment token was revoked".into()));
    }
    if token.expires_at <= at {
        return Err(ServiceError::Forbidden(format!(
            "the enrollment token expired at {}",
            token.expires_at.and_utc().to_rfc3339()
        )));
    }
    if token.uses >= token.max_uses {
        return Err(exhausted(token));
    }
    Ok(())
}

/// Creates an enrolment token for the caller's customer.
pub async fn create_enrollment_token(
    services: &Services,
    caller: &Caller,
    draft: EnrollmentTokenDraft,
) -> Result<(EnrollmentToken, IssuedToken), ServiceError> {
    let customer = customer_of(caller)?.clone();
    let label = text::NAME.check("label", draft.label.as_deref().unwrap_or(""), false)?;
    let max_uses = draft.max_uses.unwrap_or(1);
    if !(1..=100_000).contains(&max_uses) {
        return Err(ServiceError::invalid(
            "max_uses",
            "max_uses must be a whole number from 1 to 100000",
        ));
    }
    let expires_in = match draft.expires_in.as_deref() {
        None => std::time::Duration::from_secs(7 * 86_400),
        Some(text) => parse_duration(text).map_err(|e| ServiceError::invalid("expires_in", e))?,
    };
    if expires_in.as_secs() < 60 || expires_in.as_secs() > 366 * 86_400 {
        return Err(ServiceError::invalid(
            "expires_in",
            "expires_in must be from 1m to 366d",
        ));
    }
    let issued = IssuedToken::generate(ENROLLMENT_TOKEN_PREFIX);
    let at = now();
    let token = EnrollmentToken {
        id: EnrollmentTokenId::generate(),
        customer_id: customer,
        label,
        lookup: issued.lookup.clone(),
        secret_hash: issued.secret_hash.clone(),
        max_uses,
        uses: 0,
        created_by: caller.user.to_string(),
        created_at: at,
        expires_at: at + TimeDelta::from_std(expires_in).map_err(|e| ServiceError::internal("expiry", e))?,
        revoked_at: None,
    };
    let stored = token.clone();
    let created = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                Customer::hold(conn, &stored.customer_id)?;
                Cap::EnrollmentTokens.check(EnrollmentToken::count_usable(
                    conn,
                    &stored.customer_id,
                    stored.created_at,
                )?)?;
                Ok::<_, ServiceError>(EnrollmentToken::insert(conn, &stored)?)
            })
        })
        .await;
    services.refusals.note_cap(created)?;
    tracing::info!(enrollment_token.id = %token.id, user.id = %caller.user, "created enrollment token");
    Ok((token, issued))
}

/// The caller's customer's enrolment tokens, newest first.
pub async fn enrollment_tokens(services: &Services, caller: &Caller) -> Result<Vec<EnrollmentToken>, ServiceError> {
    let customer = customer_of(caller)?.clone();
    Ok(services
        .db
        .query(move |conn| EnrollmentToken::of_customer(conn, &customer))
        .await?)
}

/// Revokes one of the caller's customer's enrolment tokens.
pub async fn revoke_enrollment_token(services: &Services, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let customer = customer_of(caller)?.clone();
    let not_found = || ServiceError::NotFound("enrollment token");
    let id: EnrollmentTokenId = id.parse().map_err(|_| not_found())?;
    services
        .db
        .run(move |conn| {
            let token = EnrollmentToken::find(conn, &id)?
                .filter(|t| t.customer_id == customer)
                .ok_or_else(not_found)?;
            EnrollmentToken::revoke(conn, &token.id, now())?;
            Ok::<_, ServiceError>(())
        })
        .await?;
    tracing::info!(user.id = %caller.user, "revoked enrollment token");
    Ok(())
}
