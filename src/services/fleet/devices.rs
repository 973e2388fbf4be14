//! Enrolling devices (by a customer admin, or by the device itself with an
//! enrolment token), the enrolment tokens, reading the fleet, and decommissioning.
//! A device belongs to exactly one customer; every read here is scoped to the
//! caller's customer, and anything outside it is "not found".

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Deserialize;

use super::pull_target::{self as pulls, check_request, PullRequest};
use crate::db::models::observation::to_the_second;
use crate::db::models::patch::is_entitled;
use crate::db::models::window::WindowRecord;
use crate::db::models::{
    now, Customer, DevicePull, DeviceRecord, EnrollmentToken, Generations, ObservationRecord, Product, Seen,
};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::fleet::Labels;
use crate::domain::patch::Platform;
use crate::domain::state::Maybe;
use crate::domain::{text, Caller, ObservationSource, Scope};
use crate::ids::{CustomerId, DeviceId, EnrollmentTokenId, ObservationId};
use crate::secrets::{IssuedToken, PresentedToken, SealingKey, ENROLLMENT_TOKEN_PREFIX};
use crate::services::log;
use crate::services::outbound::Outbound;
use crate::services::refusals::Refusal;
use crate::services::{ServiceError, Services};

use super::cache::DEVICE_TOKEN_PREFIX;
use super::Fleet;

/// Rows of history a device page shows.
pub const HISTORY_ROWS: i64 = 200;

use super::customer_of;
pub use super::device_reads::{detail, list, visible, DeviceDetail, ListQuery};
pub use super::enrollment_tokens::{
    create_enrollment_token, enrollment_tokens, revoke_enrollment_token, EnrollmentTokenDraft,
};
use super::enrollment_tokens::{exhausted, usable};

/// A device as a customer admin enrols it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDraft {
    pub name: String,
    pub product: String,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the server asks the device for its version (`GET`, JSON answer).
    #[serde(default)]
    pub pull_url: Option<String>,
    /// When: a cron schedule of six fields, seconds first; the customer's default
    /// when absent.
    #[serde(default)]
    pub pull_schedule: Option<String>,
    /// Sent as `Authorization: Bearer`; sealed at rest, never shown again.
    #[serde(default)]
    pub pull_token: Option<String>,
}

impl DeviceDraft {
    fn pull_request(&self, outbound: &Outbound) -> Result<Option<PullRequest>, ServiceError> {
        check_request(
            outbound,
            self.pull_url.as_deref(),
            self.pull_schedule.as_deref(),
            self.pull_token.as_deref(),
        )
    }
}

pub use crate::domain::device::Enrolment as SelfEnrolment;

/// A device just enrolled, with its token (shown once).
pub struct Enrolled {
    pub device: DeviceRecord,
    pub customer: String,
    pub product: String,
    pub token: IssuedToken,
}

/// The checked parts of a new device.
struct Checked {
    name: String,
    product: Product,
    platform: Option<String>,
    version: Option<String>,
    labels: Labels,
}

/// The products a customer is entitled to, looked up once per slug.
struct Entitled<'a> {
    customer: &'a Customer,
    known: HashMap<String, Option<Product>>,
}

impl<'a> Entitled<'a> {
    fn of(customer: &'a Customer) -> Self {
        Entitled {
            customer,
            known: HashMap::new(),
        }
    }

    fn product(&mut self, conn: &mut DbConnection, slug: &str) -> Result<Product, ServiceError> {
        if !self.known.contains_key(slug) {
            let product = match Product::find_by_slug(conn, slug)? {
                Some(p) if is_entitled(conn, &self.customer.id, &p.id)? => Some(p),
                _ => None,
            };
            self.known.insert(slug.to_owned(), product);
        }
        self.known.get(slug).cloned().flatten().ok_or_else(|| {
            ServiceError::invalid(
                "product",
                format!("`{slug}` is not a product this customer is entitled to"),
            )
        })
    }
}

fn check_device(
    conn: &mut DbConnection,
    entitled: &mut Entitled<'_>,
    name: &str,
    product: &str,
    platform: Option<&str>,
    version: Option<&str>,
    labels: BTreeMap<String, String>,
) -> Result<Checked, ServiceError> {
    let name = text::NAME.check("name", name, true)?;
    let product = entitled.product(conn, product)?;
    let platform = platform
        .map(|p| p.parse::<Platform>().map_err(|e| ServiceError::invalid("platform", e)))
        .transpose()?
        .map(Platform::into_string);
    let version = version
        .map(|v| {
            product
                .scheme()
                .parse(v.trim())
                .map(|v| v.to_string())
                .map_err(|e| ServiceError::invalid("version", format!("not a {} version: {e}", product.scheme())))
        })
        .transpose()?;
    let labels = Labels::parse(labels).map_err(|e| ServiceError::invalid("labels", e))?;
    Ok(Checked {
        name,
        product,
        platform,
        version,
        labels,
    })
}

/// The event of an enrolment (its entry is sealed for the device's customer).
fn enrolled_event(enrolled: &Enrolled) -> Event {
    let device = &enrolled.device;
    Event::DeviceEnrolled {
        customer: device.customer_id.clone(),
        device: device.id.clone(),
        name: device.name.clone(),
        product: enrolled.product.clone(),
        platform: device.platform.clone(),
        version: device.version.clone(),
    }
}

/// A checked device as change `seq`, with its token and, when its version is
/// known, the first row of its history; nothing is written yet.
fn new_device(
    customer: &Customer,
    checked: Checked,
    enrollment_token: Option<&EnrollmentTokenId>,
    source: ObservationSource,
    seq: i64,
) -> (Enrolled, Option<(ObservationId, Seen)>) {
    let token = IssuedToken::generate(DEVICE_TOKEN_PREFIX);
    let id = DeviceId::generate();
    let at = now();
    let first = checked.version.as_ref().map(|_| ObservationId::generate());
    let device = DeviceRecord {
        id: id.clone(),
        customer_id: customer.id.clone(),
        product_id: checked.product.id.clone(),
        name: checked.name,
        platform: checked.platform,
        labels: checked.labels,
        token_lookup: token.lookup.clone(),
        token_hash: token.secret_hash.clone(),
        enrollment_token_id: enrollment_token.cloned(),
        version: checked.version,
        image_sha256: None,
        version_source: Maybe(first.as_ref().map(|_| source)),
        latest_observation_id: first.clone(),
        last_seen_at: None,
        report_patch_id: None,
        report_state: Maybe(None),
        report_at: None,
        created_at: at,
        decommissioned_at: None,
        change_seq: seq,
        head_age_s: None,
        stale_since: None,
    };
    let history = first.zip(device.version.clone()).map(|(row, version)| {
        let at = to_the_second(at);
        let seen = Seen {
            device: id,
            version,
            image_sha256: None,
            source,
            last_source: source,
            first_seen_at: at,
            last_seen_at: at,
            times: 1,
        };
        (row, seen)
    });
    let enrolled = Enrolled {
        device,
        customer: customer.slug.clone(),
        product: checked.product.slug,
        token,
    };
    (enrolled, history)
}

/// Writes new devices and the first rows of their histories, many per statement.
fn insert_devices(
    conn: &mut DbConnection,
    devices: &[Enrolled],
    history: &[(ObservationId, Seen)],
) -> Result<(), ServiceError> {
    let records: Vec<&DeviceRecord> = devices.iter().map(|e| &e.device).collect();
    DeviceRecord::insert_all(conn, &records)?;
    // Label-scoped maintenance windows are matched to devices when the catalogue
    // loads: a labelled device of such a customer moves it.
    let mut labelled: Vec<&CustomerId> = records
        .iter()
        .filter(|d| !d.labels.as_map().is_empty())
        .map(|d| &d.customer_id)
        .collect();
    labelled.dedup();
    for customer in labelled {
        if WindowRecord::any_by_label(conn, customer)? {
            Generations::catalogue_changed(conn)?;
            break;
        }
    }
    let rows: Vec<(&ObservationId, &Seen)> = history.iter().map(|(id, seen)| (id, seen)).collect();
    ObservationRecord::insert_all(conn, &rows)?;
    Ok(())
}

/// Inserts a checked device (and, when its version is known, the first row of its
/// history) as change `seq`.
fn insert_device(
    conn: &mut DbConnection,
    customer: &Customer,
    checked: Checked,
    enrollment_token: Option<&EnrollmentTokenId>,
    source: ObservationSource,
    seq: i64,
) -> Result<Enrolled, ServiceError> {
    let (enrolled, history) = new_device(customer, checked, enrollment_token, source, seq);
    insert_devices(conn, std::slice::from_ref(&enrolled), history.as_slice())?;
    Ok(enrolled)
}

/// The caller's customer.
fn customer_row(conn: &mut DbConnection, id: &CustomerId) -> Result<Customer, ServiceError> {
    Customer::find(conn, id)?.ok_or(ServiceError::NotFound("customer"))
}

/// Enrols a device into the caller's fleet.
pub async fn enrol(services: &Services, caller: &Caller, draft: DeviceDraft) -> Result<Enrolled, ServiceError> {
    let customer = customer_of(caller)?.clone();
    let actor = caller.actor();
    let pull = draft.pull_request(&services.outbound)?;
    pulls::check_resolved(&services.outbound, pull.as_ref()).await?;
    let sealing = services.sealing.clone();
    let enrolled = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let customer = customer_row(conn, &customer)?;
                let checked = check_device(
                    conn,
                    &mut Entitled::of(&customer),
                    &draft.name,
                    &draft.product,
                    draft.platform.as_deref(),
                    draft.version.as_deref(),
                    draft.labels,
                )?;
                let seq = Generations::next_device_change(conn)?;
                let enrolled = insert_device(conn, &customer, checked, None, ObservationSource::Admin, seq)?;
                if let Some(pull) = &pull {
                    pulls::store(conn, &sealing, &enrolled.device.id, &customer.id, pull)?;
                }
                log::append(conn, &enrolled_event(&enrolled), &actor)?;
                Ok::<_, ServiceError>(enrolled)
            })
        })
        .await?;
    Fleet::sync(services).await?;
    tracing::info!(device.id = %enrolled.device.id, user.id = %caller.user, "enrolled device");
    Ok(enrolled)
}

/// Enrols many devices of customer `slug` at once (provisioning at the factory or
/// a migration), all or none; returns each with its token. The planner learns of
/// the new rows before this returns.
/// Pull URLs are checked by `outbound`'s policy and pull tokens sealed with `sealing`.
pub fn import(
    conn: &mut DbConnection,
    sealing: &SealingKey,
    outbound: &Outbound,
    slug: &str,
    drafts: Vec<DeviceDraft>,
) -> Result<Vec<Enrolled>, ServiceError> {
    let enrolled = conn.write_transaction(|conn| {
        let customer = Customer::find_by_slug(conn, slug)?
            .ok_or_else(|| ServiceError::invalid("customer", format!("there is no customer `{slug}`")))?;
        let mut entitled = Entitled::of(&customer);
        let seq = Generations::next_device_change(conn)?;
        // Every line is checked before anything is written; then the rows go in
        // many per statement.
        let mut enrolled = Vec::with_capacity(drafts.len());
        let mut history = Vec::with_capacity(drafts.len());
        let mut pulled = Vec::new();
        for (line, draft) in drafts.into_iter().enumerate() {
            let pull = draft.pull_request(outbound).map_err(|err| at_line(err, line))?;
            let checked = check_device(
                conn,
                &mut entitled,
                &draft.name,
                &draft.product,
                draft.platform.as_deref(),
                draft.version.as_deref(),
                draft.labels,
            )
            .map_err(|err| at_line(err, line))?;
            let (device, first) = new_device(&customer, checked, None, ObservationSource::Admin, seq);
            if let Some(pull) = pull {
                pulled.push((enrolled.len(), pull));
            }
            history.extend(first);
            enrolled.push(device);
        }
        // The log's entries are sealed on another core while the rows go in.
        let events: Vec<Event> = enrolled.iter().map(enrolled_event).collect();
        let logged: Vec<(&Event, &Actor)> = events.iter().map(|e| (e, &Actor::Cli)).collect();
        let (entries, inserted) = std::thread::scope(|scope| {
            let entries = scope.spawn(|| log::prepare(&logged));
            let inserted = insert_devices(conn, &enrolled, &history);
            (entries.join(), inserted)
        });
        inserted?;
        let entries =
            entries.map_err(|_| ServiceError::internal("sealing the enrolments' log entries", "it panicked"))??;
        for (at, pull) in &pulled {
            pulls::store(conn, sealing, &enrolled[*at].device.id, &customer.id, pull)?;
        }
        log::enqueue(conn, &entries)?;
        Ok::<_, ServiceError>(enrolled)
    })?;
    // A bulk import leaves a tally per device; exposure should not sum them all.
    crate::db::models::exposure::fold_tallies(conn)?;
    crate::db::refresh_device_statistics(conn)?;
    Ok(enrolled)
}

/// Names the input line an error is about.
fn at_line(err: ServiceError, line: usize) -> ServiceError {
    match err {
        ServiceError::Invalid { field, message } => ServiceError::Invalid {
            field: field.map(|f| format!("line {}: {f}", line + 1)),
            message: format!("line {}: {message}", line + 1),
        },
        other => other,
    }
}

/// Enrols a device that presents an enrolment token; rate limited per token and
/// per client address.
pub async fn enrol_with_token(
    services: &Services,
    address: IpAddr,
    request: SelfEnrolment,
) -> Result<Enrolled, ServiceError> {
    let presented = PresentedToken::parse(ENROLLMENT_TOKEN_PREFIX, request.enrollment_token.trim());
    let checked = services
        .enrol_limiter
        .check(address, presented.as_ref().map_or("malformed", |p| p.lookup));
    services.refusals.note(Refusal::EnrollmentRate, checked)?;
    let refused = || ServiceError::Unauthenticated("the enrollment token is not valid".into());
    let presented = presented.ok_or_else(refused)?;
    let lookup = presented.lookup.to_owned();
    let token = services
        .db
        .query(move |conn| EnrollmentToken::find_by_lookup(conn, &lookup))
        .await?
        .filter(|t| presented.matches(&t.secret_hash))
        .ok_or_else(refused)?;
    // Only a caller with a genuine token learns how its pull URL is judged (what it
    // resolves to is no one else's business).
    usable(&token, now())?;
    let pull = check_request(
        &services.outbound,
        request.pull_url.as_deref(),
        None,
        request.pull_token.as_deref(),
    )?;
    pulls::check_resolved(&services.outbound, pull.as_ref()).await?;
    let sealing = services.sealing.clone();
    let enrolled = services
        .db
        .write(move |conn| {
            let token = EnrollmentToken::find(conn, &token.id)?.ok_or_else(refused)?;
            usable(&token, now())?;
            let customer = customer_row(conn, &token.customer_id)?;
            let checked = check_device(
                conn,
                &mut Entitled::of(&customer),
                &request.name,
                &request.product,
                request.platform.as_deref(),
                Some(&request.version),
                request.labels,
            )?;
            if !EnrollmentToken::spend(conn, &token.id, now())? {
                // Revoked or expired since it was read, or used up.
                let token = EnrollmentToken::find(conn, &token.id)?.ok_or_else(refused)?;
                usable(&token, now())?;
                return Err(exhausted(&token));
            }
            let seq = Generations::next_device_change(conn)?;
            let actor = Actor::EnrollmentToken(token.id.clone());
            let enrolled = insert_device(conn, &customer, checked, Some(&token.id), ObservationSource::Poll, seq)?;
            if let Some(pull) = &pull {
                pulls::store(conn, &sealing, &enrolled.device.id, &customer.id, pull)?;
            }
            log::append(conn, &enrolled_event(&enrolled), &actor)?;
            Ok::<_, ServiceError>(enrolled)
        })
        .await?;
    Fleet::sync(services).await?;
    tracing::info!(device.id = %enrolled.device.id, "device enrolled itself");
    Ok(enrolled)
}

/// Decommissions a device of the caller's customer: its token stops working at
/// once (on this instance, and on others at their next sync); its history stays.
pub async fn decommission(services: &Services, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let scope = Scope::Customer(customer_of(caller)?.clone());
    let actor = caller.actor();
    let device = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let (device, _) = visible(conn, &scope, &id)?;
                if device.decommissioned_at.is_some() {
                    return Err(ServiceError::Conflict("this device is already decommissioned".into()));
                }
                let seq = Generations::next_device_change(conn)?;
                DeviceRecord::decommission(conn, &device.id, now(), seq)?;
                DevicePull::remove(conn, &device.id)?;
                let event = Event::DeviceDecommissioned {
                    customer: device.customer_id.clone(),
                    device: device.id.clone(),
                };
                log::append(conn, &event, &actor)?;
                Ok(device.id)
            })
        })
        .await?;
    Fleet::sync(services).await?;
    tracing::info!(device.id = %device, user.id = %caller.user, "decommissioned device");
    Ok(())
}
