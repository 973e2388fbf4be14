//! `GET /`: the public landing page, or the signed-in user's home with the next steps
//! for its role.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::advisories::ListQuery;
use crate::auth::MaybeWebUser;
use crate::db::models::{Customer, User};
use crate::domain::Scope;
use crate::error::AppError;
use crate::error::PageError;
use crate::http::pages::{context, render};
use crate::http::views::render_index;
use crate::state::AppState;

pub async fn get_home(state: web::Data<AppState>, user: MaybeWebUser) -> Result<HttpResponse, PageError> {
    let Some(user) = user.0 else {
        return render_index(&state, None, &ListQuery::default()).await;
    };
    let mut page = context(Some(&user));
    match user.scope.clone() {
        Scope::Vendor => {
            let (customers, users) = state
                .db
                .run(|conn| Ok::<_, crate::services::ServiceError>((Customer::count(conn)?, User::count(conn, None)?)))
                .await
                .map_err(|err| PageError::with_state(&state, err))?;
            page.insert("customer_count", &customers);
            page.insert("user_count", &users);
            page.insert("is_admin", &(user.role == crate::domain::Role::VendorAdmin));
            render(&state, StatusCode::OK, "home_vendor.html", &page)
        }
        Scope::Customer(id) => {
            let found = state
                .db
                .run(move |conn| {
                    Ok::<_, crate::services::ServiceError>((Customer::find(conn, &id)?, User::count(conn, Some(&id))?))
                })
                .await
                .map_err(|err| PageError::with_state(&state, err))?;
            let (Some(customer), users) = found else {
                return Err(PageError::with_state(&state, AppError::NotFound("customer")));
            };
            page.insert("customer_name", &customer.name);
            page.insert("customer_slug", &customer.slug);
            page.insert("user_count", &users);
            render(&state, StatusCode::OK, "home_customer.html", &page)
        }
    }
}
