//! Account operations shared by the HTTP handlers and the command line: creating
//! customers, users and API tokens, checking a login, opening a web session. Input
//! is checked here, once, and every refusal is an [`AppError`] naming the field.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::auth::{API_TOKEN_PREFIX, SESSION_PREFIX};
use crate::db::models::{now, ApiToken, Customer, NewApiToken, NewCustomer, NewSession, NewUser, Session, User};
use crate::db::DbConnection;
use crate::domain::{Email, NewPassword, Role, Slug};
use crate::error::{is_unique_violation, AppError};
use crate::ids::{CustomerId, TokenId, UserId};
use crate::secrets::{hash_password, random_hex, IssuedToken};

/// Longest display name or token label accepted.
const MAX_NAME_CHARS: usize = 200;

/// Checks a free-text name: present, not too long, no control characters.
pub fn check_name(field: &str, text: &str, required: bool) -> Result<String, AppError> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(AppError::invalid(field, format!("{field} must not be empty")));
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::invalid(
            field,
            format!("{field} must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_owned())
}

fn to_timedelta(field: &str, duration: Duration) -> Result<TimeDelta, AppError> {
    TimeDelta::from_std(duration).map_err(|_| AppError::invalid(field, format!("{field} is too long")))
}

/// Creates a customer; 409 when the slug is taken.
pub fn create_customer(conn: &mut DbConnection, slug: &str, name: &str) -> Result<Customer, AppError> {
    let slug: Slug = slug
        .parse()
        .map_err(|e| AppError::invalid("slug", format!("slug {e}")))?;
    let name = check_name("name", name, true)?;
    let id = CustomerId::generate();
    let new = NewCustomer {
        id: &id,
        slug: slug.as_str(),
        name: &name,
        created_at: now(),
    };
    Customer::insert(conn, &new).map_err(|err| {
        if is_unique_violation(&err) {
            AppError::Conflict(format!("a customer with slug `{slug}` already exists"))
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
}

impl UserDraft {
    /// Checks the fields and hashes the password.
    pub fn new(email: &str, password: String, role: &str, customer_slug: Option<String>) -> Result<Self, AppError> {
        let email: Email = email
            .parse()
            .map_err(|e| AppError::invalid("email", format!("email {e}")))?;
        let role: Role = role.parse().map_err(|e: String| AppError::invalid("role", e))?;
        match (role.is_vendor(), &customer_slug) {
            (true, Some(_)) => return Err(AppError::invalid("customer", "vendor roles belong to no customer")),
            (false, None) => return Err(AppError::invalid("customer", "a customer-admin needs a customer")),
            _ => {}
        }
        let password =
            NewPassword::parse(password).map_err(|e| AppError::invalid("password", format!("password {e}")))?;
        let password_hash = hash_password(&password).map_err(AppError::Internal)?;
        Ok(UserDraft {
            email,
            password_hash,
            role,
            customer_slug,
        })
    }
}

/// Creates a user; 422 for an unknown customer, 409 when the e-mail is taken.
pub fn create_user(conn: &mut DbConnection, draft: &UserDraft) -> Result<User, AppError> {
    let customer = match &draft.customer_slug {
        None => None,
        Some(slug) => Some(
            Customer::find_by_slug(conn, slug)?
                .ok_or_else(|| AppError::invalid("customer", format!("there is no customer `{slug}`")))?,
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
    };
    User::insert(conn, &new).map_err(|err| {
        if is_unique_violation(&err) {
            AppError::Conflict(format!("a user with e-mail `{}` already exists", draft.email))
        } else {
            err.into()
        }
    })
}

/// Issues an API token for `user`; the plaintext is in the returned [`IssuedToken`]
/// and nowhere else.
pub fn issue_token(
    conn: &mut DbConnection,
    user: &User,
    label: &str,
    expires_in: Option<Duration>,
) -> Result<(ApiToken, IssuedToken), AppError> {
    let label = check_name("label", label, false)?;
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
    let token = ApiToken::insert(conn, &new)?;
    Ok((token, issued))
}

/// A new web session: the cookie value (shown once) and the CSRF token of its forms.
pub struct OpenedSession {
    pub cookie: IssuedToken,
    pub csrf_token: String,
    pub expires_at: NaiveDateTime,
}

/// Opens a web session for `user`, and clears that user's expired ones.
pub fn open_session(conn: &mut DbConnection, user: &User, ttl: Duration) -> Result<OpenedSession, AppError> {
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
