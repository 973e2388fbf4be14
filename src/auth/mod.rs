//! Who is calling. The extractors here authenticate a request and, by their type in
//! a handler's signature, say who may call that handler: [`AuthUser`] (any user),
//! [`Allowed`] with a [`Rule`] (`VendorUser`, `VendorAdmin`, `CustomerAdmin`, and
//! the page forms `WebVendor`, …), [`MaybeWebUser`] and [`CsrfForm`]. Credentials
//! are API tokens (`Authorization: Bearer`) or the session cookie; a
//! cookie-authenticated API call that changes state must carry the session's CSRF
//! token in `X-CSRF-Token`. Checking a credential is the accounts service's job.

mod client;

use std::marker::PhantomData;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use client::client_ip;

use crate::db::models::User;
use crate::domain::{Caller, Role, Scope};
use crate::error::{AppError, PageError};
use crate::ids::{CustomerId, TokenId};
use crate::secrets::constant_time_eq;
use crate::services::accounts;
use crate::services::fleet::{DeviceEntry, DEVICE_TOKEN_PREFIX};
use crate::state::AppState;

/// Name of the cookie that holds the web session.
pub const SESSION_COOKIE: &str = "pw_session";
/// Header that carries the CSRF token on cookie-authenticated API writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a user authenticated with.
#[derive(Clone, Debug)]
pub enum Credential {
    Token(TokenId),
    Session { id: String, csrf_token: String },
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
        let role = user.role;
        let scope = Scope::of(role, user.customer_id.as_ref())
            .ok_or_else(|| AppError::forbidden("this account belongs to no customer"))?;
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

    /// The caller as the services see it.
    pub fn caller(&self) -> Caller {
        Caller {
            user: self.user.id.clone(),
            role: self.role,
            scope: self.scope.clone(),
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

/// A refused credential, kept on the request for the extractors (an [`AppError`]
/// cannot be cloned).
#[derive(Clone, Debug)]
enum Rejection {
    Unauthorized(String),
    Forbidden(String),
    Unavailable(String),
    /// The cause, for the log when the response is made; never sent.
    Internal(String),
}

impl From<AppError> for Rejection {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Unauthorized(message) => Rejection::Unauthorized(message),
            AppError::Forbidden { message, .. } => Rejection::Forbidden(message),
            AppError::Unavailable(cause) => Rejection::Unavailable(cause),
            AppError::DatabaseDown { .. } => Rejection::Unavailable("the database is known to be down".into()),
            AppError::Internal(cause) => Rejection::Internal(format!("{cause:#}")),
            other => Rejection::Internal(other.to_string()),
        }
    }
}

impl From<Rejection> for AppError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Unauthorized(message) => AppError::Unauthorized(message),
            Rejection::Forbidden(message) => AppError::forbidden(message),
            Rejection::Unavailable(cause) => AppError::Unavailable(cause),
            Rejection::Internal(cause) => AppError::Internal(anyhow::anyhow!("authenticating: {cause}")),
        }
    }
}

/// What a request's credentials proved: the bearer token's user or device, and the
/// session cookie's user, each when one was presented.
#[derive(Clone, Debug, Default)]
struct Proven {
    token: Option<Result<AuthUser, Rejection>>,
    device: Option<Result<DeviceEntry, Rejection>>,
    session: Option<Result<AuthUser, Rejection>>,
}

async fn prove(req: &HttpRequest) -> Result<Proven, AppError> {
    let state = state(req)?;
    let mut device = None;
    let token = match bearer(req) {
        Err(err) => Some(Err(err.into())),
        Ok(None) => None,
        Ok(Some(token))
            if token
                .strip_prefix(DEVICE_TOKEN_PREFIX)
                .is_some_and(|rest| rest.starts_with('_')) =>
        {
            // Devices are authenticated from memory: the poll never waits on the database.
            device = Some(
                state
                    .fleet
                    .authenticate(token)
                    .map_err(|err| Rejection::from(AppError::from(err))),
            );
            None
        }
        Ok(Some(token)) => Some(
            async {
                let (user, token) = accounts::authenticate_token(&state, token).await?;
                AuthUser::from_user(user, Credential::Token(token.id))
            }
            .await
            .map_err(Rejection::from),
        ),
    };
    let session = match req.cookie(SESSION_COOKIE) {
        None => None,
        Some(cookie) => Some(
            async {
                let (user, session) = accounts::authenticate_session(&state, cookie.value()).await?;
                AuthUser::from_user(
                    user,
                    Credential::Session {
                        id: session.id,
                        csrf_token: session.csrf_token,
                    },
                )
            }
            .await
            .map_err(Rejection::from),
        ),
    };
    Ok(Proven { token, device, session })
}

/// Middleware: checks the credentials before any extractor runs, so that a refused
/// credential answers 401/403 whatever else is wrong with the request (a body that
/// fails to parse would otherwise race the database lookup and tell a caller
/// without rights what the handler expects).
pub async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let proven = prove(req.request()).await?;
    req.extensions_mut().insert(proven);
    next.call(req).await
}

async fn proven(req: &HttpRequest) -> Result<Proven, AppError> {
    let early = req.extensions().get::<Proven>().cloned();
    match early {
        Some(proven) => Ok(proven),
        None => prove(req).await,
    }
}

async fn authenticate(req: &HttpRequest, channel: Channel) -> Result<Option<AuthUser>, AppError> {
    let proven = proven(req).await?;
    if channel == Channel::Api {
        if let Some(device) = proven.device {
            device?;
            return Err(AppError::forbidden(
                "a device token may call only the device routes and patch downloads",
            ));
        }
        if let Some(token) = proven.token {
            return Ok(Some(token?));
        }
    }
    let Some(session) = proven.session else {
        return Ok(None);
    };
    let user = session?;
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

fn required(user: Option<AuthUser>) -> Result<AuthUser, AppError> {
    user.ok_or_else(|| AppError::Unauthorized("authentication required".into()))
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { admitted::<AnyUser>(&req, Channel::Api).await })
    }
}

/// A device, authenticated by its device token (from memory, without the database).
pub struct Device(pub DeviceEntry);

impl FromRequest for Device {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let proven = proven(&req).await?;
            match (proven.device, proven.token) {
                (Some(device), _) => Ok(Device(device?)),
                // A bearer that is no token at all is not a device's: unauthenticated.
                (None, Some(Err(_))) => Err(AppError::Unauthorized(
                    "a device token is required; the bearer presented is not a valid token".into(),
                )),
                (None, Some(Ok(_))) => Err(AppError::forbidden("this route is for devices: present a device token")),
                (None, None) => Err(AppError::Unauthorized("a device token is required".into())),
            }
        })
    }
}

/// A user or a device: for the routes both may call.
pub enum Someone {
    User(AuthUser),
    Device(DeviceEntry),
}

impl FromRequest for Someone {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let proven = proven(&req).await?;
            if let Some(device) = proven.device {
                return Ok(Someone::Device(device?));
            }
            Ok(Someone::User(admitted::<AnyUser>(&req, Channel::Api).await?))
        })
    }
}

/// Who a guarded handler admits.
pub trait Rule: 'static {
    /// The refusal for a user this rule does not admit.
    fn admit(user: &AuthUser) -> Result<(), String>;
}

/// Vendor staff: vendor-admin or vendor-publisher.
pub struct Vendor;
/// The vendor-admin role only.
pub struct VendorAdminRole;
/// A customer-admin, acting for its one customer.
pub struct CustomerRole;

impl Rule for Vendor {
    fn admit(user: &AuthUser) -> Result<(), String> {
        if user.role.is_vendor() {
            Ok(())
        } else {
            Err("this needs a vendor role".into())
        }
    }
}

impl Rule for VendorAdminRole {
    fn admit(user: &AuthUser) -> Result<(), String> {
        if user.role == Role::VendorAdmin {
            Ok(())
        } else {
            Err("this needs the vendor-admin role".into())
        }
    }
}

impl Rule for CustomerRole {
    fn admit(user: &AuthUser) -> Result<(), String> {
        match user.scope {
            Scope::Customer(_) => Ok(()),
            Scope::Vendor => Err("this needs the customer-admin role".into()),
        }
    }
}

/// The API channel (token or cookie with CSRF header), answering errors as JSON.
pub struct Api;
/// The page channel (session cookie only), answering errors as HTML or a redirect.
pub struct Web;

/// A user that `R` admits, authenticated through channel `C`.
pub struct Allowed<R: Rule, C = Api>(pub AuthUser, PhantomData<(R, C)>);

/// A vendor-admin or vendor-publisher, on the API.
pub type VendorUser = Allowed<Vendor>;
/// A vendor-admin, on the API.
pub type VendorAdmin = Allowed<VendorAdminRole>;
/// A customer-admin, on the API.
pub type CustomerAdmin = Allowed<CustomerRole>;
/// Vendor staff on the HTML screens.
pub type WebVendor = Allowed<Vendor, Web>;
/// A vendor-admin on the HTML screens.
pub type WebVendorAdmin = Allowed<VendorAdminRole, Web>;
/// A customer-admin on the HTML screens.
pub type WebCustomer = Allowed<CustomerRole, Web>;
/// Any signed-in user on the HTML pages; pages without one redirect to `/login`.
pub type WebUser = Allowed<AnyUser, Web>;

/// Every authenticated user.
pub struct AnyUser;

impl Rule for AnyUser {
    fn admit(_: &AuthUser) -> Result<(), String> {
        Ok(())
    }
}

impl<R: Rule, C> Allowed<R, C> {
    /// The customer a customer-admin acts for.
    pub fn customer(&self) -> Option<&CustomerId> {
        self.0.scope.customer()
    }
}

/// Where a user signed in with a one-time password may go: to set a password of its
/// own, or away.
pub const OWN_PASSWORD_PAGE: &str = "/account/password";

/// Whether `user` signed in with a one-time password and asks for anything but
/// setting its own or signing out.
fn held_for_own_password(user: &AuthUser, req: &HttpRequest) -> bool {
    user.user.password_change_required && ![OWN_PASSWORD_PAGE, "/logout"].contains(&req.path())
}

async fn admitted<R: Rule>(req: &HttpRequest, channel: Channel) -> Result<AuthUser, AppError> {
    let user = required(authenticate(req, channel).await?)?;
    if held_for_own_password(&user, req) {
        return Err(AppError::forbidden(format!(
            "this account signed in with a one-time password: set a password of its own at {OWN_PASSWORD_PAGE} first"
        )));
    }
    R::admit(&user).map_err(AppError::forbidden)?;
    Ok(user)
}

/// A web user held for its own password goes to the page that sets it.
async fn web_user(req: &HttpRequest) -> Result<Option<AuthUser>, PageError> {
    match authenticate(req, Channel::Web).await {
        Ok(Some(user)) if held_for_own_password(&user, req) => Err(PageError::redirect(OWN_PASSWORD_PAGE)),
        Ok(user) => Ok(user),
        Err(AppError::Unauthorized(_)) => Ok(None),
        Err(err) => Err(PageError::new(req, err)),
    }
}

impl<R: Rule> FromRequest for Allowed<R, Api> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(Allowed(admitted::<R>(&req, Channel::Api).await?, PhantomData)) })
    }
}

impl<R: Rule> FromRequest for Allowed<R, Web> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            web_user(&req).await?;
            admitted::<R>(&req, Channel::Web)
                .await
                .map(|user| Allowed(user, PhantomData))
                .map_err(|err| PageError::new(&req, err))
        })
    }
}

/// The API caller, if the request carries a user's credentials: for public routes
/// that show more to some (restricted advisories to the customers they are for). A
/// device, or an account held for its own password, reads as anyone; credentials
/// that do not hold are refused as on any other route.
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<AuthUser>);

/// Who reads advisories as `user` (anyone, without one).
pub fn reader_of(user: Option<&AuthUser>) -> crate::domain::Reader {
    user.map_or(crate::domain::Reader::Anyone, |u| {
        crate::domain::Reader::in_scope(&u.scope)
    })
}

impl MaybeUser {
    /// Who reads advisories through this request.
    pub fn reader(&self) -> crate::domain::Reader {
        reader_of(self.0.as_ref())
    }
}

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if proven(&req).await?.device.is_some() {
                return Ok(MaybeUser(None));
            }
            let user = authenticate(&req, Channel::Api).await?;
            Ok(MaybeUser(user.filter(|u| !held_for_own_password(u, &req))))
        })
    }
}

impl MaybeWebUser {
    /// Who reads advisories on this page.
    pub fn reader(&self) -> crate::domain::Reader {
        reader_of(self.0.as_ref())
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
        Box::pin(async move { web_user(&req).await.map(MaybeWebUser) })
    }
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    fields: T,
}

/// A submitted HTML form of a user that `R` admits, whose `csrf_token` field matched
/// the session's. A handler that takes one cannot forget either check.
pub struct CsrfForm<T, R: Rule = AnyUser> {
    pub user: AuthUser,
    pub fields: T,
    _rule: PhantomData<R>,
}

/// A form that only vendor staff may submit.
pub type VendorForm<T> = CsrfForm<T, Vendor>;
/// A form that only a customer-admin may submit.
pub type CustomerAdminForm<T> = CsrfForm<T, CustomerRole>;
/// A form that only a vendor-admin may submit.
pub type VendorAdminForm<T> = CsrfForm<T, VendorAdminRole>;

impl<T: DeserializeOwned + 'static, R: Rule> FromRequest for CsrfForm<T, R> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<WithCsrf<T>>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            web_user(&req).await?;
            let result = async {
                let user = admitted::<R>(&req, Channel::Web).await?;
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
                    _rule: PhantomData,
                })
            };
            result.await.map_err(|err| PageError::new(&req, err))
        })
    }
}
