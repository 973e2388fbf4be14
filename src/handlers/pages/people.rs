//! `/people`: the colleagues an admin manages — a customer-admin its customer's
//! admins, the vendor-admin the vendor's staff with their roles. An admin invites a
//! colleague with a one-time password shown once, removes one, or ends its sessions.
//! `/account/password`: every user sets its own password (after a one-time one,
//! without being asked for it again).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, Credential, CsrfForm, WebUser};
use crate::domain::Role;
use crate::error::PageError;
use crate::http::pages::{context, form_error, render, see_other, NoFields};
use crate::services::users;
use crate::state::AppState;

#[derive(Serialize)]
struct PersonRow {
    id: String,
    email: String,
    role: String,
    created_at: String,
    sessions: i64,
    one_time: bool,
    is_self: bool,
}

/// The invitation form.
#[derive(Deserialize, Serialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// What the page shows after an invitation: the one-time password, once.
#[derive(Serialize)]
struct Invitation {
    email: String,
    password: String,
}

struct PeopleView<'a> {
    form: &'a InviteForm,
    error: Option<&'a str>,
    invited: Option<Invitation>,
}

/// The roles an admin may give: a customer-admin its own; the vendor-admin either
/// vendor role.
fn roles_for(user: &AuthUser) -> Vec<&'static str> {
    match user.role {
        Role::CustomerAdmin => vec![Role::CustomerAdmin.as_str()],
        _ => vec![Role::VendorPublisher.as_str(), Role::VendorAdmin.as_str()],
    }
}

async fn people_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    view: PeopleView<'_>,
) -> Result<HttpResponse, PageError> {
    let people = users::people(state, &user.caller())
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let rows: Vec<PersonRow> = people
        .into_iter()
        .map(|p| PersonRow {
            id: p.user.id.to_string(),
            email: p.user.email,
            role: p.user.role.as_str().to_owned(),
            created_at: p.user.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            sessions: p.sessions,
            one_time: p.user.password_change_required,
            is_self: p.user.id == user.user.id,
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("people", &rows);
    page.insert("roles", &roles_for(user));
    page.insert("form", view.form);
    page.insert("error", &view.error);
    page.insert("invited", &view.invited);
    page.insert("is_customer", &user.scope.customer().is_some());
    render(state, status, "people.html", &page)
}

/// `GET /people`
pub async fn get_people(state: web::Data<AppState>, user: WebUser) -> Result<HttpResponse, PageError> {
    let view = PeopleView {
        form: &InviteForm::default(),
        error: None,
        invited: None,
    };
    people_page(&state, &user.0, StatusCode::OK, view).await
}

/// `POST /people`: invites a colleague; the answer shows its one-time password once.
pub async fn post_person(state: web::Data<AppState>, form: CsrfForm<InviteForm>) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let invited = match fields.role.parse::<Role>() {
        Ok(role) => users::invite(&state, &user.caller(), fields.email.trim().to_owned(), role, None).await,
        Err(message) => Err(crate::services::ServiceError::invalid("role", message)),
    };
    match invited {
        Ok(invited) => {
            let view = PeopleView {
                form: &InviteForm::default(),
                error: None,
                invited: Some(Invitation {
                    email: invited.user.0.email,
                    password: invited.password,
                }),
            };
            people_page(&state, &user, StatusCode::CREATED, view).await
        }
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            let view = PeopleView {
                form: &fields,
                error: Some(&message),
                invited: None,
            };
            people_page(&state, &user, status, view).await
        }
    }
}

/// `POST /people/{id}/delete`
pub async fn post_person_delete(
    state: web::Data<AppState>,
    form: CsrfForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    users::delete(&state, &form.user.caller(), &id)
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    Ok(see_other("/people"))
}

/// `POST /people/{id}/sessions`: signs the colleague out everywhere.
pub async fn post_person_sessions(
    state: web::Data<AppState>,
    form: CsrfForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    users::end_sessions(&state, &form.user.caller(), &id)
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    Ok(see_other("/people"))
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

fn password_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let mut page = context(Some(user));
    page.insert("one_time", &user.user.password_change_required);
    page.insert("error", &error);
    render(state, status, "account_password.html", &page)
}

/// `GET /account/password`
pub async fn get_password(state: web::Data<AppState>, user: WebUser) -> Result<HttpResponse, PageError> {
    password_page(&state, &user.0, StatusCode::OK, None)
}

/// `POST /account/password`: sets the user's own password; its other sessions end.
pub async fn post_password(
    state: web::Data<AppState>,
    form: CsrfForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let result = if fields.password != fields.repeat {
        Err(crate::services::ServiceError::invalid(
            "repeat",
            "the two new passwords differ",
        ))
    } else {
        let session = match &user.credential {
            Credential::Session { id, .. } => id.clone(),
            Credential::Token(_) => String::new(),
        };
        users::set_own_password(&state, &user.caller(), &session, fields.current, fields.password).await
    };
    match result {
        Ok(()) => Ok(see_other("/")),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            password_page(&state, &user, status, Some(&message))
        }
    }
}
