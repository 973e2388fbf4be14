//! Users as admins manage them. A vendor-admin manages every user; a customer-admin
//! manages the customer-admins of its own customer and sees no one else; a
//! publisher manages no one. A user the caller may not see is not found.

use crate::db::models::user::UserWithCustomer;
use crate::db::models::{Customer, User};
use crate::domain::{Caller, Role, Scope};
use crate::ids::{CustomerId, UserId};
use crate::services::accounts::{self, UserDraft};
use crate::services::{ServiceError, Services};

/// A user to create, as asked for.
pub struct NewUserRequest {
    pub email: String,
    pub password: String,
    pub role: Role,
    pub customer: Option<String>,
}

/// Only admins manage users; publishers do not.
fn require_admin(caller: &Caller) -> Result<(), ServiceError> {
    match caller.role {
        Role::VendorAdmin | Role::CustomerAdmin => Ok(()),
        Role::VendorPublisher => Err(ServiceError::Forbidden("managing users needs an admin role".into())),
    }
}

/// The slug of `customer`.
pub async fn customer_slug(services: &Services, customer: &CustomerId) -> Result<String, ServiceError> {
    let id = customer.clone();
    services
        .db
        .query(move |conn| Customer::find(conn, &id))
        .await?
        .map(|c| c.slug)
        .ok_or(ServiceError::NotFound("customer"))
}

/// What the home page counts for `scope`: the customer (for a customer's admins),
/// how many customers, and how many users.
pub async fn overview(services: &Services, scope: &Scope) -> Result<(Option<Customer>, i64, i64), ServiceError> {
    let scope = scope.clone();
    services
        .db
        .run(move |conn| match scope.customer() {
            None => Ok((None, Customer::count(conn)?, User::count(conn, None)?)),
            Some(id) => {
                let customer = Customer::find(conn, id)?.ok_or(ServiceError::NotFound("customer"))?;
                Ok((Some(customer), 1, User::count(conn, Some(id))?))
            }
        })
        .await
}

/// Creates a user within what `caller` may manage.
pub async fn create(
    services: &Services,
    caller: &Caller,
    request: NewUserRequest,
) -> Result<UserWithCustomer, ServiceError> {
    require_admin(caller)?;
    let NewUserRequest {
        email,
        password,
        role,
        customer,
    } = request;
    let customer = match &caller.scope {
        Scope::Vendor => customer,
        Scope::Customer(own) => {
            let own_slug = customer_slug(services, own).await?;
            if role != Role::CustomerAdmin {
                return Err(ServiceError::Forbidden(
                    "a customer-admin can only add customer-admins".into(),
                ));
            }
            if customer.as_deref().is_some_and(|slug| slug != own_slug) {
                return Err(ServiceError::invalid(
                    "customer",
                    "you can only add users to your own customer",
                ));
            }
            Some(own_slug)
        }
    };
    // Hashing is slow: it runs on the blocking pool, holding no connection.
    let draft = tokio::task::spawn_blocking(move || UserDraft::new(&email, password, role.as_str(), customer))
        .await
        .map_err(|e| ServiceError::internal("hashing a password", e))??;
    let created = services
        .db
        .run(move |conn| {
            let user = accounts::create_user(conn, &draft)?;
            Ok::<_, ServiceError>(User::find_with_customer(conn, &user.id)?.unwrap_or((user, draft.customer_slug)))
        })
        .await;
    let created = services.refusals.note_cap(created)?;
    tracing::info!(user.id = %created.0.id, by.user.id = %caller.user, "created user");
    Ok(created)
}

/// The users `caller` may manage.
pub async fn list(services: &Services, caller: &Caller) -> Result<Vec<UserWithCustomer>, ServiceError> {
    require_admin(caller)?;
    let scope = caller.scope.clone();
    Ok(services
        .db
        .query(move |conn| User::list_with_customer(conn, scope.customer()))
        .await?)
}

/// The users of the customer `slug`, for the vendor's customer screen; 404 when the
/// caller may not see that customer.
pub async fn of_customer(
    services: &Services,
    caller: &Caller,
    slug: String,
) -> Result<Vec<UserWithCustomer>, ServiceError> {
    require_admin(caller)?;
    let customer = super::tenants::customer(services, &caller.scope, slug).await?;
    Ok(services
        .db
        .query(move |conn| User::list_with_customer(conn, Some(&customer.id)))
        .await?)
}

/// The user `id` if `caller` may see it: itself, or any user in its scope when the
/// caller is an admin.
pub async fn visible(services: &Services, caller: &Caller, id: &str) -> Result<UserWithCustomer, ServiceError> {
    let id: UserId = id.parse().map_err(|_| ServiceError::NotFound("user"))?;
    let found = services
        .db
        .query(move |conn| User::find_with_customer(conn, &id))
        .await?;
    found
        .filter(|(user, _)| {
            user.id == caller.user || (require_admin(caller).is_ok() && caller.scope.can_see(user.customer_id.as_ref()))
        })
        .ok_or(ServiceError::NotFound("user"))
}

/// Deletes a user `caller` may manage, never the caller itself.
pub async fn delete(services: &Services, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    let (user, _) = visible(services, caller, id).await?;
    require_admin(caller)?;
    if user.id == caller.user {
        return Err(ServiceError::Conflict("you cannot delete your own account".into()));
    }
    let id = user.id.clone();
    services.db.query(move |conn| User::delete(conn, &id)).await?;
    tracing::info!(user.id = %user.id, by.user.id = %caller.user, "deleted user");
    Ok(())
}
