//! Maintenance windows and the emergency policy, a customer admin's to set for its
//! own fleet. Both reach polls through the offer catalogue: a change moves the
//! catalogue's generation, and every instance answers with it within a second.

use chrono::NaiveDateTime;

use crate::db::models::window::{EmergencyPolicy, WindowRecord};
use crate::db::models::{now, Generations};
use crate::db::DbConnection;
use crate::domain::window::{parse_windows, Window, WindowInput};
use crate::domain::Caller;
use crate::ids::CustomerId;
use crate::services::fleet::customer_of;
use crate::services::{ServiceError, Services};

/// A customer's windows and emergency policy.
#[derive(Clone, Debug)]
pub struct WindowsView {
    pub windows: Vec<WindowInput>,
    /// Patches fixing an emergency advisory install whatever the windows say.
    pub emergencies_ignore_windows: bool,
    /// Who last changed either, and when.
    pub updated: Option<(String, NaiveDateTime)>,
}

/// The caller's customer's windows and policy.
pub async fn view(services: &Services, caller: &Caller) -> Result<WindowsView, ServiceError> {
    let customer = customer_of(caller)?.clone();
    services.db.run(move |conn| read(conn, &customer)).await
}

/// Replaces the caller's customer's windows with `inputs` (none: its devices
/// install whenever they are offered).
pub async fn replace(
    services: &Services,
    caller: &Caller,
    inputs: Vec<WindowInput>,
) -> Result<WindowsView, ServiceError> {
    let customer = customer_of(caller)?.clone();
    let windows = parse_windows(&inputs).map_err(|(field, message)| ServiceError::invalid(field, message))?;
    let specs = inputs
        .iter()
        .map(|w| serde_json::to_string(w).map_err(|e| ServiceError::internal("storing a window", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let by = caller.actor().as_text();
    let view = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                WindowRecord::replace(conn, &customer, &specs, &by, now())?;
                Generations::catalogue_changed(conn)?;
                read(conn, &customer)
            })
        })
        .await?;
    crate::services::fleet::refresh(services).await;
    tracing::info!(user.id = %caller.user, windows = windows.len(), labelled = windows.iter().filter(|w| w.by_label()).count(), "maintenance windows set");
    Ok(view)
}

/// Whether patches fixing an emergency advisory ignore the caller's customer's windows.
pub async fn set_emergency_policy(
    services: &Services,
    caller: &Caller,
    ignore_windows: bool,
) -> Result<WindowsView, ServiceError> {
    let customer = customer_of(caller)?.clone();
    let by = caller.actor().as_text();
    let view = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                EmergencyPolicy::set(
                    conn,
                    &EmergencyPolicy {
                        customer_id: customer.clone(),
                        ignore_windows,
                        updated_by: by,
                        updated_at: now(),
                    },
                )?;
                Generations::catalogue_changed(conn)?;
                read(conn, &customer)
            })
        })
        .await?;
    crate::services::fleet::refresh(services).await;
    tracing::info!(user.id = %caller.user, ignore_windows, "emergency policy set");
    Ok(view)
}

fn read(conn: &mut DbConnection, customer: &CustomerId) -> Result<WindowsView, ServiceError> {
    let records = WindowRecord::of(conn, customer)?;
    let windows = records
        .iter()
        .map(|r| serde_json::from_str(&r.spec).map_err(|e| ServiceError::internal("a stored window", e)))
        .collect::<Result<Vec<WindowInput>, _>>()?;
    let policy = EmergencyPolicy::of(conn, customer)?;
    let updated = records
        .iter()
        .map(|r| (r.updated_by.clone(), r.updated_at))
        .chain(policy.iter().map(|p| (p.updated_by.clone(), p.updated_at)))
        .max_by_key(|(_, at)| *at);
    Ok(WindowsView {
        windows,
        emergencies_ignore_windows: policy.is_some_and(|p| p.ignore_windows),
        updated,
    })
}

/// The windows as checked, for screens that show when each opens next.
pub fn checked(view: &WindowsView) -> Vec<Window> {
    parse_windows(&view.windows).unwrap_or_default()
}
