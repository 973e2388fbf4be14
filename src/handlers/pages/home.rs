//! `GET /`: the public landing page, or the signed-in user's home with the next steps
//! for its role.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::api::advisories::ListQuery;
use crate::auth::MaybeWebUser;
use crate::domain::Role;
use crate::error::PageError;
use crate::http::pages::{context, render};
use crate::http::views::render_index;
use crate::services::users;
use crate::state::AppState;

pub async fn get_home(state: web::Data<AppState>, user: MaybeWebUser) -> Result<HttpResponse, PageError> {
    let Some(user) = user.0 else {
        return render_index(&state, None, &ListQuery::default()).await;
    };
    let mut page = context(Some(&user));
    let (customer, customers, users) = users::overview(&state, &user.scope)
        .await
        .map_err(|err| PageError::with_state(&state, err))?;
    page.insert("user_count", &users);
    match customer {
        None => {
            page.insert("customer_count", &customers);
            page.insert("is_admin", &(user.role == Role::VendorAdmin));
            render(&state, StatusCode::OK, "home_vendor.html", &page)
        }
        Some(customer) => {
            page.insert("customer_name", &customer.name);
            page.insert("customer_slug", &customer.slug);
            render(&state, StatusCode::OK, "home_customer.html", &page)
        }
    }
}
