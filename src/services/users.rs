//! Users as admins manage them. A vendor-admin manages every user; a customer-admin
//! manages the customer-admins of its own customer and sees no one else; a
//! publisher manages no one. A user the caller may not see is not found. Admins
//! invite colleagues with a one-time password shown once, remove them, and end
//! their sessions; every user sets its own password.

use crate::db::models::user::UserWithCustomer;
use crate::db::models::{Customer, Session, User};
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
    create_with(services, caller, request, false).await
}

/// Creates a user within what `caller` may manage, its password one-time or not.
async fn create_with(
    services: &Services,
    caller: &Caller,
    request: NewUserRequest,
    one_time: bool,
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
    let draft = UserDraft { one_time, ..draft };
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

/// A colleague invited with a one-time password, shown to the inviting admin once.
pub struct Invited {
    pub user: UserWithCustomer,
    pub password: String,
}

/// Invites `email` as `role` into what `caller` manages (a customer-admin: its own
/// customer; the vendor-admin: vendor staff, or `customer`'s admins). The password
/// is random, shown once, and signs the colleague in only to set a password of its
/// own.
pub async fn invite(
    services: &Services,
    caller: &Caller,
    email: String,
    role: Role,
    customer: Option<String>,
) -> Result<Invited, ServiceError> {
    require_admin(caller)?;
    let password = hex::encode(crate::random::bytes::<12>());
    let request = NewUserRequest {
        email,
        password: password.clone(),
        role,
        customer,
    };
    let user = create_with(services, caller, request, true).await?;
    Ok(Invited { user, password })
}

/// Ends every web session of a user `caller` manages (and revokes none of its API
/// tokens); returns how many ended.
pub async fn end_sessions(services: &Services, caller: &Caller, id: &str) -> Result<usize, ServiceError> {
    let (user, _) = visible(services, caller, id).await?;
    require_admin(caller)?;
    let id = user.id.clone();
    let ended = services
        .db
        .query(move |conn| Session::delete_for_user(conn, &id))
        .await?;
    tracing::info!(user.id = %user.id, by.user.id = %caller.user, sessions = ended, "ended sessions");
    Ok(ended)
}

/// A password the user sets for itself: after a one-time password without asking for
/// it again; otherwise only with the `current` one. Its other sessions end.
pub async fn set_own_password(
    services: &Services,
    caller: &Caller,
    keep_session: &str,
    current: String,
    new: String,
) -> Result<(), ServiceError> {
    let id = caller.user.clone();
    let user = services
        .db
        .query(move |conn| User::find(conn, &id))
        .await?
        .ok_or(ServiceError::NotFound("user"))?;
    if !user.password_change_required {
        let verified = services
            .password_gate
            .verify(current, Some(user.password_hash.clone()))
            .await?;
        if !verified {
            return Err(ServiceError::invalid("current", "the current password is wrong"));
        }
    }
    let hash = tokio::task::spawn_blocking(move || {
        let password = crate::domain::NewPassword::parse(new)
            .map_err(|e| ServiceError::invalid("password", format!("password {e}")))?;
        crate::secrets::hash_password(&password).map_err(ServiceError::Internal)
    })
    .await
    .map_err(|e| ServiceError::internal("hashing a password", e))??;
    let keep = keep_session.to_owned();
    let ended = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                User::set_password_hash(conn, &user.id, &hash)?;
                Ok::<_, ServiceError>(Session::delete_others(conn, &user.id, &keep)?)
            })
        })
        .await?;
    tracing::info!(user.id = %caller.user, other_sessions_ended = ended, "set own password");
    Ok(())
}

/// A person on the people screen: the user, its customer's slug, and how many web
/// sessions it has open.
pub struct Person {
    pub user: User,
    pub customer: Option<String>,
    pub sessions: i64,
}

/// The people `caller` manages on its screen: a customer-admin its customer's
/// admins, the vendor-admin the vendor's staff (customers' admins are on each
/// customer's screen).
pub async fn people(services: &Services, caller: &Caller) -> Result<Vec<Person>, ServiceError> {
    let listed: Vec<UserWithCustomer> = list(services, caller)
        .await?
        .into_iter()
        .filter(|(user, _)| caller.scope.customer().is_some() || user.customer_id.is_none())
        .collect();
    let ids: Vec<crate::ids::UserId> = listed.iter().map(|(u, _)| u.id.clone()).collect();
    let sessions: std::collections::HashMap<_, _> = services
        .db
        .query(move |conn| Session::live_counts(conn, &ids, crate::db::models::now()))
        .await?
        .into_iter()
        .collect();
    Ok(listed
        .into_iter()
        .map(|(user, customer)| Person {
            sessions: sessions.get(&user.id).copied().unwrap_or(0),
            user,
            customer,
        })
        .collect())
}
