//! Account operations shared by the HTTP handlers and the command line: creating
//! customers, users and API tokens, checking a login, opening a web session. Input
//! is checked here, once, and every refusal is an [`ServiceError`] naming the field.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::db::models::{now, ApiToken, Customer, NewApiToken, NewCustomer, NewSession, NewUser, Session, User};
use crate::db::DbConnection;
use crate::domain::{parse_duration, text, Caller, Email, NewPassword, Role, Slug};
use crate::ids::{CustomerId, TokenId, UserId};
use crate::secrets::{
    hash_password, random_hex, verify_password, IssuedToken, PresentedToken, API_TOKEN_PREFIX, SESSION_PREFIX,
};
use crate::services::error::{is_unique_violation, ServiceError};
use crate::services::refusals::{Cap, Refusal};
use crate::services::Services;

fn to_timedelta(field: &str, duration: Duration) -> Result<TimeDelta, ServiceError> {
    TimeDelta::from_std(duration).map_err(|_| ServiceError::invalid(field, format!("{field} is too long")))
}

/// Creates a customer; 409 when the slug is taken.
pub fn create_customer(conn: &mut DbConnection, slug: &str, name: &str) -> Result<Customer, ServiceError> {
    let slug: Slug = slug
        .parse()
        .map_err(|e| ServiceError::invalid("slug", format!("slug {e}")))?;
    let name = text::NAME.check("name", name, true)?;
    let id = CustomerId::generate();
    let new = NewCustomer {
        id: &id,
        slug: slug.as_str(),
        name: &name,
        created_at: now(),
    };
    Customer::insert(conn, &new).map_err(|err| {
        if is_unique_violation(&err) {
            ServiceError::Conflict(format!("a customer with slug `{slug}` already exists"))
        } else {
            err.into()
        }
    })
}

/// A user to create, with its password already hashed (hashing is slow and must
/// not hold a database connection).
pub struct UserDraft {
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub customer_slug: Option<String>,
    /// The password is one-time: it signs the user in only to set its own.
    pub one_time: bool,
}

impl UserDraft {
    /// Checks the fields and hashes the password.
    pub fn new(email: &str, password: String, role: &str, customer_slug: Option<String>) -> Result<Self, ServiceError> {
        let email: Email = email
            .parse()
            .map_err(|e| ServiceError::invalid("email", format!("email {e}")))?;
        let role: Role = role.parse().map_err(|e: String| ServiceError::invalid("role", e))?;
        match (role.is_vendor(), &customer_slug) {
            (true, Some(_)) => return Err(ServiceError::invalid("customer", "vendor roles belong to no customer")),
            (false, None) => return Err(ServiceError::invalid("customer", "a customer-admin needs a customer")),
            _ => {}
        }
        let password =
            NewPassword::parse(password).map_err(|e| ServiceError::invalid("password", format!("password {e}")))?;
        let password_hash = hash_password(&password).map_err(ServiceError::Internal)?;
        Ok(UserDraft {
            email,
            password_hash,
            role,
            customer_slug,
            one_time: false,
        })
    }
}

/// Creates a user; 422 for an unknown customer, 409 when the e-mail is taken.
pub fn create_user(conn: &mut DbConnection, draft: &UserDraft) -> Result<User, ServiceError> {
    let customer = match &draft.customer_slug {
        None => None,
        Some(slug) => Some(
            Customer::find_by_slug(conn, slug)?
                .ok_or_else(|| ServiceError::invalid("customer", format!("there is no customer `{slug}`")))?,
        ),
    };
    let id = UserId::generate();
    let new = NewUser {
        id: &id,
        email: draft.email.as_str(),
        password_hash: &draft.password_hash,
        role: draft.role.as_str(),
        customer_id: customer.as_ref().map(|c| &c.id),
        created_at: now(),
        password_change_required: draft.one_time,
    };
    conn.write_transaction(|conn| {
        if let Some(customer) = &customer {
            Customer::hold(conn, &customer.id)?;
            Cap::Users.check(User::count(conn, Some(&customer.id))?)?;
        }
        User::insert(conn, &new).map_err(|err| {
            if is_unique_violation(&err) {
                ServiceError::Conflict(format!("a user with e-mail `{}` already exists", draft.email))
            } else {
                err.into()
            }
        })
    })
}

/// Issues an API token for `user`; the plaintext is in the returned [`IssuedToken`]
/// and nowhere else.
pub fn issue_token(
    conn: &mut DbConnection,
    user: &User,
    label: &str,
    expires_in: Option<Duration>,
) -> Result<(ApiToken, IssuedToken), ServiceError> {
    let label = text::NAME.check("label", label, false)?;
    let created_at = now();
    let expires_at = expires_in
        .map(|d| to_timedelta("expires_in", d).map(|delta| created_at + delta))
        .transpose()?;
    let issued = IssuedToken::generate(API_TOKEN_PREFIX);
    let id = TokenId::generate();
    let new = NewApiToken {
        id: &id,
        user_id: &user.id,
        label: &label,
        lookup: &issued.lookup,
        secret_hash: &issued.secret_hash,
        created_at,
        expires_at,
    };
    let token = conn.write_transaction(|conn| {
        User::hold(conn, &user.id)?;
        Cap::ApiTokens.check(ApiToken::count_live(conn, &user.id, created_at)?)?;
        Ok::<_, ServiceError>(ApiToken::insert(conn, &new)?)
    })?;
    Ok((token, issued))
}

/// Issues an API token for `user` (the caller itself) and logs it.
pub async fn create_token(
    services: &Services,
    user: &User,
    label: String,
    expires_in: Option<Duration>,
) -> Result<(ApiToken, IssuedToken), ServiceError> {
    let owner = user.clone();
    let issued = services
        .db
        .run(move |conn| issue_token(conn, &owner, &label, expires_in))
        .await;
    let (token, issued) = services.refusals.note_cap(issued)?;
    tracing::info!(token.id = %token.id, user.id = %user.id, "issued API token");
    Ok((token, issued))
}

/// A new web session: the cookie value (shown once) and the CSRF token of its forms.
pub struct OpenedSession {
    pub cookie: IssuedToken,
    pub csrf_token: String,
    pub expires_at: NaiveDateTime,
}

/// Opens a web session for `user`, and clears that user's expired ones.
pub fn open_session(conn: &mut DbConnection, user: &User, ttl: Duration) -> Result<OpenedSession, ServiceError> {
    let created_at = now();
    let expires_at = created_at + to_timedelta("session_ttl", ttl)?;
    let cookie = IssuedToken::generate(SESSION_PREFIX);
    let csrf_token = random_hex(32);
    Session::delete_expired(conn, created_at)?;
    Session::insert(
        conn,
        &NewSession {
            id: &cookie.lookup,
            secret_hash: &cookie.secret_hash,
            user_id: &user.id,
            csrf_token: &csrf_token,
            created_at,
            expires_at,
        },
    )?;
    Ok(OpenedSession {
        cookie,
        csrf_token,
        expires_at,
    })
}

/// Parses an `expires_in` field (`30d`, `12h`); empty means no expiry.
pub fn parse_expiry(text: Option<&str>) -> Result<Option<Duration>, ServiceError> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| parse_duration(t).map_err(|e| ServiceError::invalid("expires_in", format!("expires_in: {e}"))))
        .transpose()
}

/// Bounds how many password checks run at once: each argon2id check holds ~19 MiB,
/// so a flood of logins must queue instead of exhausting memory.
pub struct PasswordGate {
    permits: tokio::sync::Semaphore,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// How long a password check waits for its turn before the login answers 503.
const PASSWORD_QUEUE_WAIT: Duration = Duration::from_secs(10);

impl PasswordGate {
    pub fn new(concurrent: usize) -> Self {
        PasswordGate {
            permits: tokio::sync::Semaphore::new(concurrent.max(1)),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Checks `password` against `stored` once a permit is free.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ServiceError> {
        let _permit = tokio::time::timeout(PASSWORD_QUEUE_WAIT, self.permits.acquire())
            .await
            .map_err(|_| ServiceError::Unavailable("too many password checks are waiting".into()))?
            .map_err(|e| ServiceError::internal("the password gate is closed", e))?;
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        let checked = tokio::task::spawn_blocking(move || verify_password(&password, stored.as_deref())).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        checked.map_err(|e| ServiceError::internal("checking a password", e))
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Checks the e-mail's length, the rate limit and the password, then opens a
/// session. Every failure of the password check reads the same, whether or not the
/// account exists.
pub async fn sign_in(
    services: &Services,
    address: IpAddr,
    email: &str,
    password: String,
) -> Result<SignedIn, ServiceError> {
    let email = email.trim();
    // Checked before the limiter sees it, so an oversized key never takes its memory.
    if email.len() > MAX_EMAIL_BYTES {
        return Err(ServiceError::invalid(
            "email",
            format!("email is longer than {MAX_EMAIL_BYTES} bytes"),
        ));
    }
    services
        .refusals
        .note(Refusal::LoginRate, services.login_limiter.check(address, email))?;
    let email = email.to_lowercase();
    let user = services.db.query(move |conn| User::find_by_email(conn, &email)).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = services.password_gate.verify(password, stored).await?;
    let user = match (verified, user) {
        (true, Some(user)) => user,
        _ => {
            tracing::warn!(client.address = %address, "failed login");
            return Err(ServiceError::Unauthenticated("wrong e-mail or password".into()));
        }
    };
    if user.password_change_required && user.created_at + ONE_TIME_PASSWORD_TTL <= now() {
        tracing::warn!(user.id = %user.id, client.address = %address, "expired one-time password");
        return Err(ServiceError::Unauthenticated(
            "this one-time password has expired: ask an administrator to invite you again".into(),
        ));
    }
    let ttl = services.config.session_ttl;
    let owner = user.clone();
    let (opened, customer) = services
        .db
        .run(move |conn| {
            let opened = open_session(conn, &owner, ttl)?;
            let customer = match &owner.customer_id {
                Some(id) => Customer::find(conn, id)?.map(|c| c.slug),
                None => None,
            };
            Ok::<_, ServiceError>((opened, customer))
        })
        .await?;
    tracing::info!(user.id = %user.id, client.address = %address, "signed in");
    Ok(SignedIn { user, customer, opened })
}

/// How long an invited colleague's one-time password signs it in, from the invitation.
pub const ONE_TIME_PASSWORD_TTL: TimeDelta = TimeDelta::days(7);

/// A successful sign-in: who, the slug of their customer, and the new session.
pub struct SignedIn {
    pub user: User,
    pub customer: Option<String>,
    pub opened: OpenedSession,
}

/// The longest e-mail address (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Ends one web session.
pub async fn end_session(services: &Services, caller: &Caller, session_id: String) -> Result<(), ServiceError> {
    services
        .db
        .query(move |conn| Session::delete(conn, &session_id))
        .await?;
    tracing::info!(user.id = %caller.user, "signed out");
    Ok(())
}

/// Whether `caller` may see and revoke a token of `owner`: its own, any for a
/// vendor-admin, those of its own customer's users for a customer-admin.
pub fn may_manage(caller: &Caller, owner: &User) -> bool {
    owner.id == caller.user
        || match caller.role {
            Role::VendorAdmin => true,
            Role::CustomerAdmin => caller.scope.can_see(owner.customer_id.as_ref()),
            Role::VendorPublisher => false,
        }
}

/// The token `id` with its owner, when `caller` may manage it; 404 otherwise.
pub async fn visible_token(services: &Services, caller: &Caller, id: &str) -> Result<(ApiToken, User), ServiceError> {
    let id: TokenId = id.parse().map_err(|_| ServiceError::NotFound("token"))?;
    let found = services.db.query(move |conn| ApiToken::find(conn, &id)).await?;
    found
        .filter(|(_, owner)| may_manage(caller, owner))
        .ok_or(ServiceError::NotFound("token"))
}

/// Revokes a token `caller` may manage; 409 when it already was.
pub async fn revoke_token(services: &Services, caller: &Caller, id: &str) -> Result<ApiToken, ServiceError> {
    let (token, _) = visible_token(services, caller, id).await?;
    let target = token.id.clone();
    let changed = services
        .db
        .query(move |conn| ApiToken::revoke(conn, &target, now()))
        .await?;
    if changed == 0 {
        return Err(ServiceError::Conflict("the token is already revoked".into()));
    }
    tracing::info!(token.id = %token.id, by.user.id = %caller.user, "revoked API token");
    Ok(token)
}

/// The API tokens of `user`, newest first.
pub async fn tokens_of(services: &Services, user: &UserId) -> Result<Vec<(ApiToken, User)>, ServiceError> {
    let own = user.clone();
    Ok(services
        .db
        .query(move |conn| ApiToken::list(conn, Some(&own), None))
        .await?)
}

/// What a password change ended.
#[derive(Debug, PartialEq, Eq)]
pub struct PasswordChanged {
    pub sessions_ended: usize,
    pub tokens_revoked: usize,
}

/// Sets the password of the user with `email` (already hashed), ends all of that
/// user's web sessions and, with `revoke_tokens`, revokes its API tokens too: a
/// password is changed because it may be known to someone else.
pub fn set_password(
    conn: &mut DbConnection,
    email: &str,
    password_hash: &str,
    revoke_tokens: bool,
) -> Result<PasswordChanged, ServiceError> {
    let email: Email = email
        .parse()
        .map_err(|e| ServiceError::invalid("email", format!("email {e}")))?;
    conn.write_transaction(|conn| {
        let user = User::find_by_email(conn, email.as_str())?.ok_or(ServiceError::NotFound("user"))?;
        User::set_password_hash(conn, &user.id, password_hash)?;
        let sessions_ended = Session::delete_for_user(conn, &user.id)?;
        let tokens_revoked = if revoke_tokens {
            ApiToken::revoke_all_of(conn, &user.id, now())?
        } else {
            0
        };
        tracing::info!(user.id = %user.id, sessions_ended, tokens_revoked, "password changed");
        Ok(PasswordChanged {
            sessions_ended,
            tokens_revoked,
        })
    })
}

/// The user behind a bearer API token, and the token; 401 for anything but a live,
/// matching token. A use is recorded at most once a minute.
pub async fn authenticate_token(services: &Services, text: &str) -> Result<(User, ApiToken), ServiceError> {
    fn rejected() -> ServiceError {
        ServiceError::Unauthenticated("invalid, expired or revoked token".into())
    }
    // A malformed token is refused before the database is asked.
    PresentedToken::parse(API_TOKEN_PREFIX, text).ok_or_else(rejected)?;
    let text = text.to_owned();
    // One trip to the database: look up, check, and record the use.
    services
        .db
        .run(move |conn| {
            let presented = PresentedToken::parse(API_TOKEN_PREFIX, &text).ok_or_else(rejected)?;
            let Some((token, user)) = ApiToken::find_by_lookup(conn, presented.lookup)? else {
                return Err(rejected());
            };
            let at = now();
            if !presented.matches(&token.secret_hash) || !token.is_active(at) {
                return Err(rejected());
            }
            ApiToken::touch(conn, &token, at)?;
            Ok((user, token))
        })
        .await
}

/// The user behind a session cookie, and the session; 401 when it is unknown,
/// expired or does not match.
pub async fn authenticate_session(services: &Services, value: &str) -> Result<(User, Session), ServiceError> {
    let rejected = || ServiceError::Unauthenticated("the session has expired; sign in again".into());
    let presented = PresentedToken::parse(SESSION_PREFIX, value).ok_or_else(rejected)?;
    let lookup = presented.lookup.to_owned();
    let found = services
        .db
        .query(move |conn| Session::find_live(conn, &lookup, now()))
        .await?;
    let Some((session, user)) = found else {
        return Err(rejected());
    };
    if !presented.matches(&session.secret_hash) {
        return Err(rejected());
    }
    Ok((user, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_checks_beyond_the_gate_wait_their_turn() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let gate = std::sync::Arc::new(PasswordGate::new(2));
        runtime.block_on(async {
            let checks: Vec<_> = (0..8)
                .map(|_| {
                    let gate = gate.clone();
                    tokio::spawn(async move { gate.verify("a guess".into(), None).await })
                })
                .collect();
            for check in checks {
                assert!(!check.await.unwrap().unwrap(), "an unknown account never verifies");
            }
        });
        let peak = gate.peak();
        assert!(
            (1..=2).contains(&peak),
            "{peak} of eight checks ran at once through a gate of two"
        );
    }
}
