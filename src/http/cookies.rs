//! The session cookie and its removal.

use actix_web::cookie::{time, Cookie, SameSite};

use crate::auth::SESSION_COOKIE;
use crate::config::Config;
use crate::services::accounts::OpenedSession;

/// The session cookie: HttpOnly, SameSite=Strict, Secure when served over TLS.
pub fn session_cookie(config: &Config, opened: &OpenedSession) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, opened.cookie.plaintext().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies())
        .max_age(time::Duration::seconds(
            i64::try_from(config.session_ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that clears the session cookie.
pub fn session_removal_cookie(config: &Config) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies())
        .finish();
    cookie.make_removal();
    cookie
}
