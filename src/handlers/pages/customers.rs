//! The vendor's customer screens: the list with a form to add a customer, and one
//! customer with its entitlements and its admins. Vendor staff read them; changes are
//! a vendor-admin's.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, CsrfForm, VendorAdminForm, WebVendor};
use crate::domain::Role;
use crate::error::PageError;
use crate::http::pages::{context, form_error, render, see_other};
use crate::services::fleet::exposure::Counts;
use crate::services::fleet::screens;
use crate::services::users::{self, NewUserRequest};
use crate::services::{tenants, ServiceError};
use crate::state::AppState;

#[derive(Serialize)]
struct CustomerRow {
    slug: String,
    name: String,
    devices: i64,
    /// Against the newest open emergency, when there is one.
    emergency: Option<Counts>,
}

/// The customer a screen is about.
#[derive(Serialize)]
struct CustomerName {
    slug: String,
    name: String,
}

#[derive(Deserialize, Serialize, Default)]
pub struct CustomerForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
}

async fn list_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &CustomerForm,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (customers, emergency) = screens::customers_at_a_glance(state, &user.scope)
        .await
        .map_err(|e| PageError::with_state(state, e))?;
    let rows: Vec<CustomerRow> = customers
        .into_iter()
        .map(|c| CustomerRow {
            slug: c.customer.slug,
            name: c.customer.name,
            devices: c.devices,
            emergency: c.emergency,
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("customers", &rows);
    page.insert("emergency", &emergency);
    page.insert("form", form);
    page.insert("error", &error);
    page.insert("is_admin", &(user.role == Role::VendorAdmin));
    render(state, status, "vendor_customers.html", &page)
}

/// `GET /vendor/customers`
pub async fn get_customers(state: web::Data<AppState>, user: WebVendor) -> Result<HttpResponse, PageError> {
    list_page(&state, &user.0, StatusCode::OK, &CustomerForm::default(), None).await
}

/// `POST /vendor/customers`
pub async fn post_customer(
    state: web::Data<AppState>,
    form: VendorAdminForm<CustomerForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    match tenants::create_customer(&state, &user.caller(), fields.slug.clone(), fields.name.clone()).await {
        Ok(customer) => Ok(see_other(&format!("/vendor/customers/{}", customer.slug))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            list_page(&state, &user, status, &fields, Some(&message)).await
        }
    }
}

#[derive(Serialize)]
struct ProductChoice {
    slug: String,
    name: String,
    entitled: bool,
}

#[derive(Serialize)]
struct AdminRow {
    email: String,
}

#[derive(Deserialize, Serialize, Default)]
pub struct AdminForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

async fn customer_page(
    state: &AppState,
    user: &AuthUser,
    slug: String,
    status: StatusCode,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let fail = |e: ServiceError| PageError::with_state(state, e);
    let customer = tenants::customer(state, &user.scope, slug.clone())
        .await
        .map_err(fail)?;
    let (_, entitled) = tenants::entitlements(state, &user.scope, slug.clone())
        .await
        .map_err(fail)?;
    let entitled: BTreeSet<String> = entitled.into_iter().collect();
    let products: Vec<ProductChoice> = tenants::products(state)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|p| ProductChoice {
            entitled: entitled.contains(&p.slug),
            slug: p.slug,
            name: p.name,
        })
        .collect();
    let is_admin = user.role == Role::VendorAdmin;
    let admins: Vec<AdminRow> = if is_admin {
        users::of_customer(state, &user.caller(), slug)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|(u, _)| AdminRow { email: u.email })
            .collect()
    } else {
        Vec::new()
    };
    let mut page = context(Some(user));
    page.insert(
        "customer",
        &CustomerName {
            slug: customer.slug,
            name: customer.name,
        },
    );
    page.insert("products", &products);
    page.insert("admins", &admins);
    page.insert("is_admin", &is_admin);
    page.insert("error", &error);
    render(state, status, "vendor_customer.html", &page)
}

/// `GET /vendor/customers/{slug}`
pub async fn get_customer(
    state: web::Data<AppState>,
    user: WebVendor,
    slug: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    customer_page(&state, &user.0, slug.into_inner(), StatusCode::OK, None).await
}

/// The entitlement form: one checkbox per product, named `product:<slug>`.
#[derive(Deserialize)]
pub struct EntitlementForm {
    #[serde(flatten)]
    pub boxes: std::collections::HashMap<String, String>,
}

/// `POST /vendor/customers/{slug}/entitlements`
pub async fn post_entitlements(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    form: VendorAdminForm<EntitlementForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let slug = slug.into_inner();
    let mut wanted: Vec<String> = fields
        .boxes
        .into_keys()
        .filter_map(|name| name.strip_prefix("product:").map(str::to_owned))
        .collect();
    wanted.sort();
    match tenants::set_customer_entitlements(&state, &user.caller(), slug.clone(), wanted).await {
        Ok((slug, _)) => Ok(see_other(&format!("/vendor/customers/{slug}"))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            customer_page(&state, &user, slug, status, Some(&message)).await
        }
    }
}

/// `POST /vendor/customers/{slug}/admins`
pub async fn post_admin(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    form: VendorAdminForm<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let slug = slug.into_inner();
    let customer = tenants::customer(&state, &user.scope, slug.clone())
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    let request = NewUserRequest {
        email: fields.email,
        password: fields.password,
        role: Role::CustomerAdmin,
        customer: Some(customer.slug.clone()),
    };
    match users::create(&state, &user.caller(), request).await {
        Ok(_) => Ok(see_other(&format!("/vendor/customers/{}", customer.slug))),
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            customer_page(&state, &user, slug, status, Some(&message)).await
        }
    }
}
