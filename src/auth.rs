//! Who is calling. Each extractor here authenticates a request and, by its type in a
//! handler's signature, says who may call that handler: [`AuthUser`] (any user),
//! [`VendorUser`], [`VendorAdmin`], [`CustomerAdmin`], and for HTML pages [`WebUser`],
//! [`MaybeWebUser`] and [`CsrfForm`]. Credentials are API tokens (`Authorization:
//! Bearer`) or the session cookie; a cookie-authenticated API call that changes
//! state must carry the session's CSRF token in `X-CSRF-Token`.

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::db::models::{now, ApiToken, Session, User};
use crate::domain::Role;
use crate::error::AppError;
use crate::handlers::pages::PageError;
use crate::ids::{CustomerId, TokenId};
use crate::secrets::{constant_time_eq, PresentedToken};
use crate::state::AppState;

/// Name of the cookie that holds the web session.
pub const SESSION_COOKIE: &str = "pw_session";
/// Prefix of API tokens: `pwt_<lookup>_<secret>`.
pub const API_TOKEN_PREFIX: &str = "pwt";
/// Prefix of session cookie values: `pws_<lookup>_<secret>`.
pub const SESSION_PREFIX: &str = "pws";
/// Header that carries the CSRF token on cookie-authenticated API writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a user authenticated with.
#[derive(Clone, Debug)]
pub enum Credential {
    Token(TokenId),
    Session { id: String, csrf_token: String },
}

/// Whose objects a user may see: all of them, or one customer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Vendor,
    Customer(CustomerId),
}

impl Scope {
    /// The customer a scoped caller is limited to; `None` for vendor staff.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            Scope::Vendor => None,
            Scope::Customer(id) => Some(id),
        }
    }

    /// Whether an object that belongs to `owner` (or to the vendor, when `None`) is
    /// visible in this scope.
    pub fn can_see(&self, owner: Option<&CustomerId>) -> bool {
        match self {
            Scope::Vendor => true,
            Scope::Customer(id) => owner == Some(id),
        }
    }
}

/// An authenticated user.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: User,
    pub role: Role,
    pub scope: Scope,
    pub credential: Credential,
}

impl AuthUser {
    fn from_user(user: User, credential: Credential) -> Result<Self, AppError> {
        let role = user.role();
        let scope = match (role.is_vendor(), &user.customer_id) {
            (true, _) => Scope::Vendor,
            (false, Some(customer)) => Scope::Customer(customer.clone()),
            (false, None) => return Err(AppError::forbidden("this account belongs to no customer")),
        };
        Ok(AuthUser {
            user,
            role,
            scope,
            credential,
        })
    }

    /// The session's CSRF token, when the user came in through the web login.
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf_token, .. } => Some(csrf_token),
            Credential::Token(_) => None,
        }
    }
}

/// Where a request's credentials may come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// JSON API: bearer token or session cookie (with the CSRF header on writes).
    Api,
    /// HTML pages: session cookie only; forms check their own CSRF field.
    Web,
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state is not registered")))
}

fn bearer(req: &HttpRequest) -> Result<Option<&str>, AppError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("the Authorization header is not valid text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AppError::Unauthorized(
            "the Authorization header must be `Bearer <token>`".into(),
        )),
    }
}

async fn authenticate(req: &HttpRequest, channel: Channel) -> Result<Option<AuthUser>, AppError> {
    let state = state(req)?;
    if channel == Channel::Api {
        if let Some(token) = bearer(req)? {
            return authenticate_token(&state, token).await.map(Some);
        }
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let user = authenticate_session(&state, cookie.value()).await?;
    if channel == Channel::Api && !req.method().is_safe() {
        let header = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = user.csrf_token().unwrap_or("");
        if expected.is_empty() || !constant_time_eq(header, expected) {
            return Err(AppError::csrf());
        }
    }
    Ok(Some(user))
}

async fn authenticate_token(state: &AppState, text: &str) -> Result<AuthUser, AppError> {
    let rejected = || AppError::Unauthorized("invalid, expired or revoked token".into());
    let presented = PresentedToken::parse(API_TOKEN_PREFIX, text).ok_or_else(rejected)?;
    let lookup = presented.lookup.to_owned();
    let found = state
        .db
        .run(move |conn| Ok(ApiToken::find_by_lookup(conn, &lookup)?))
        .await?;
    let Some((token, user)) = found else {
        return Err(rejected());
    };
    let at = now();
    if !presented.matches(&token.secret_hash) || !token.is_active(at) {
        return Err(rejected());
    }
    let touched = token.clone();
    state
        .db
        .run(move |conn| Ok(ApiToken::touch(conn, &touched, at)?))
        .await?;
    AuthUser::from_user(user, Credential::Token(token.id))
}

async fn authenticate_session(state: &AppState, value: &str) -> Result<AuthUser, AppError> {
    let rejected = || AppError::Unauthorized("the session has expired; sign in again".into());
    let presented = PresentedToken::parse(SESSION_PREFIX, value).ok_or_else(rejected)?;
    let lookup = presented.lookup.to_owned();
    let found = state
        .db
        .run(move |conn| Ok(Session::find_live(conn, &lookup, now())?))
        .await?;
    let Some((session, user)) = found else {
        return Err(rejected());
    };
    if !presented.matches(&session.secret_hash) {
        return Err(rejected());
    }
    AuthUser::from_user(
        user,
        Credential::Session {
            id: session.id,
            csrf_token: session.csrf_token,
        },
    )
}

fn required(user: Option<AuthUser>) -> Result<AuthUser, AppError> {
    user.ok_or_else(|| AppError::Unauthorized("authentication required".into()))
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { required(authenticate(&req, Channel::Api).await?) })
    }
}

/// A vendor-admin or vendor-publisher.
#[derive(Clone, Debug)]
pub struct VendorUser(pub AuthUser);

impl FromRequest for VendorUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = required(authenticate(&req, Channel::Api).await?)?;
            if !user.role.is_vendor() {
                return Err(AppError::forbidden("this needs a vendor role"));
            }
            Ok(VendorUser(user))
        })
    }
}

/// A vendor-admin.
#[derive(Clone, Debug)]
pub struct VendorAdmin(pub AuthUser);

impl FromRequest for VendorAdmin {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = required(authenticate(&req, Channel::Api).await?)?;
            if user.role != Role::VendorAdmin {
                return Err(AppError::forbidden("this needs the vendor-admin role"));
            }
            Ok(VendorAdmin(user))
        })
    }
}

/// A customer-admin, with the one customer it acts for.
#[derive(Clone, Debug)]
pub struct CustomerAdmin {
    pub user: AuthUser,
    pub customer: CustomerId,
}

impl FromRequest for CustomerAdmin {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = required(authenticate(&req, Channel::Api).await?)?;
            match user.scope.clone() {
                Scope::Customer(customer) => Ok(CustomerAdmin { user, customer }),
                Scope::Vendor => Err(AppError::forbidden("this needs the customer-admin role")),
            }
        })
    }
}

/// A user signed in through the web login; pages without one redirect to `/login`.
#[derive(Clone, Debug)]
pub struct WebUser(pub AuthUser);

impl FromRequest for WebUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(&req, Channel::Web).await.and_then(required);
            user.map(WebUser).map_err(|err| PageError::new(&req, err))
        })
    }
}

/// The web user if there is one; a stale cookie counts as signed out.
#[derive(Clone, Debug)]
pub struct MaybeWebUser(pub Option<AuthUser>);

impl FromRequest for MaybeWebUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(&req, Channel::Web).await {
                Ok(user) => Ok(MaybeWebUser(user)),
                Err(AppError::Unauthorized(_)) => Ok(MaybeWebUser(None)),
                Err(err) => Err(PageError::new(&req, err)),
            }
        })
    }
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    fields: T,
}

/// A submitted HTML form of a signed-in user whose `csrf_token` field matched the
/// session's. A handler that takes one cannot forget the check.
pub struct CsrfForm<T> {
    pub user: AuthUser,
    pub fields: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<WithCsrf<T>>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let result = async {
                let user = required(authenticate(&req, Channel::Web).await?)?;
                let form = form
                    .await
                    .map_err(|err| AppError::BadRequest(format!("the form could not be read: {err}")))?;
                let expected = user.csrf_token().unwrap_or("");
                if expected.is_empty() || !constant_time_eq(&form.csrf_token, expected) {
                    return Err(AppError::csrf());
                }
                Ok(CsrfForm {
                    user,
                    fields: form.into_inner().fields,
                })
            };
            result.await.map_err(|err| PageError::new(&req, err))
        })
    }
}

/// The client's address for rate limiting: the peer, or the first `X-Forwarded-For`
/// hop when the configuration says a trusted proxy sets it.
pub fn client_ip(req: &HttpRequest, trust_proxy_headers: bool) -> IpAddr {
    let forwarded = trust_proxy_headers
        .then(|| req.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok());
    forwarded
        .or_else(|| req.peer_addr().map(|addr| addr.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}
