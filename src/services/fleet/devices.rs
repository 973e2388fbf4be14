//! Enrolling devices (by a customer admin, or by the device itself with an
//! enrolment token), the enrolment tokens, reading the fleet, and decommissioning.
//! A device belongs to exactly one customer; every read here is scoped to the
//! caller's customer, and anything outside it is "not found".

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;

use super::pull_target::{self as pulls, check_request, PullRequest};
use crate::db::models::observation::to_the_second;
use crate::db::models::patch::is_entitled;
use crate::db::models::{
    now, AnomalyRecord, Customer, DeviceFilter, DevicePull, DeviceRecord, EnrollmentToken, Generations, ListedAnomaly,
    NamedDevice, ObservationRecord, Product, PullFailureRecord, ReportRecord, Seen,
};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::fleet::Labels;
use crate::domain::network::AddressPolicy;
use crate::domain::patch::Platform;
use crate::domain::state::Maybe;
use crate::domain::{parse_duration, text, Caller, ObservationSource, Scope};
use crate::ids::{CustomerId, DeviceId, EnrollmentTokenId, ObservationId};
use crate::secrets::{IssuedToken, PresentedToken, SealingKey};
use crate::services::log;
use crate::services::{ServiceError, Services};

use super::cache::DEVICE_TOKEN_PREFIX;
use super::{scoped_customer, Fleet};

/// Prefix of enrolment tokens: `pwe_<lookup>_<secret>`.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "pwe";
/// Rows of history a device page shows.
pub const HISTORY_ROWS: i64 = 200;

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
    fn pull_request(&self, policy: &AddressPolicy) -> Result<Option<PullRequest>, ServiceError> {
        check_request(
            policy,
            self.pull_url.as_deref(),
            self.pull_schedule.as_deref(),
            self.pull_token.as_deref(),
        )
    }
}

pub use crate::domain::device::Enrolment as SelfEnrolment;

/// An enrolment token as a customer admin asks for it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentTokenDraft {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub max_uses: Option<i32>,
    /// How long it stays valid, like `7d` (the default) or `12h`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

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
    labels: Vec<(String, String)>,
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
    let labels = Labels::parse(labels)
        .map_err(|e| ServiceError::invalid("labels", e))?
        .into_map()
        .into_iter()
        .collect();
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

/// Inserts a checked device (and, when its version is known, the first row of its
/// history) as change `seq`: three inserts, nothing read back.
fn insert_device(
    conn: &mut DbConnection,
    customer: &Customer,
    checked: Checked,
    enrollment_token: Option<&EnrollmentTokenId>,
    source: ObservationSource,
    seq: i64,
) -> Result<Enrolled, ServiceError> {
    let token = IssuedToken::generate(DEVICE_TOKEN_PREFIX);
    let id = DeviceId::generate();
    let at = now();
    let labels_json = serde_json::to_string(&checked.labels.iter().cloned().collect::<BTreeMap<_, _>>())
        .map_err(|e| ServiceError::internal("labels", e))?;
    let first = checked.version.as_ref().map(|_| ObservationId::generate());
    let device = DeviceRecord {
        id: id.clone(),
        customer_id: customer.id.clone(),
        product_id: checked.product.id.clone(),
        name: checked.name,
        platform: checked.platform,
        labels: labels_json,
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
    DeviceRecord::insert(conn, &device, &checked.labels)?;
    if let (Some(row), Some(version)) = (&first, &device.version) {
        let at = to_the_second(at);
        ObservationRecord::insert(
            conn,
            row,
            &Seen {
                device: id,
                version: version.clone(),
                image_sha256: None,
                source,
                last_source: source,
                first_seen_at: at,
                last_seen_at: at,
                times: 1,
            },
        )?;
    }
    Ok(Enrolled {
        device,
        customer: customer.slug.clone(),
        product: checked.product.slug,
        token,
    })
}

/// The caller's customer.
fn customer_row(conn: &mut DbConnection, id: &CustomerId) -> Result<Customer, ServiceError> {
    Customer::find(conn, id)?.ok_or(ServiceError::NotFound("customer"))
}

fn customer_of(caller: &Caller) -> Result<&CustomerId, ServiceError> {
    caller
        .scope
        .customer()
        .ok_or_else(|| ServiceError::Forbidden("devices are enrolled by the customer's admins".into()))
}

/// Enrols a device into the caller's fleet.
pub async fn enrol(services: &Services, caller: &Caller, draft: DeviceDraft) -> Result<Enrolled, ServiceError> {
    let customer = customer_of(caller)?.clone();
    let actor = caller.actor();
    let pull = draft.pull_request(&services.outbound.policy)?;
    pulls::check_resolved(&services.outbound.policy, pull.as_ref()).await?;
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
/// Pull URLs are checked against `policy` and pull tokens sealed with `sealing`.
pub fn import(
    conn: &mut DbConnection,
    sealing: &SealingKey,
    policy: &AddressPolicy,
    slug: &str,
    drafts: Vec<DeviceDraft>,
) -> Result<Vec<Enrolled>, ServiceError> {
    let enrolled = conn.write_transaction(|conn| {
        let customer = Customer::find_by_slug(conn, slug)?
            .ok_or_else(|| ServiceError::invalid("customer", format!("there is no customer `{slug}`")))?;
        let mut entitled = Entitled::of(&customer);
        let seq = Generations::next_device_change(conn)?;
        let mut enrolled = Vec::with_capacity(drafts.len());
        for (line, draft) in drafts.into_iter().enumerate() {
            let pull = draft.pull_request(policy).map_err(|err| at_line(err, line))?;
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
            let device = insert_device(conn, &customer, checked, None, ObservationSource::Admin, seq)?;
            if let Some(pull) = &pull {
                pulls::store(conn, sealing, &device.device.id, &customer.id, pull)?;
            }
            enrolled.push(device);
        }
        let events: Vec<Event> = enrolled.iter().map(enrolled_event).collect();
        let logged: Vec<(&Event, &Actor)> = events.iter().map(|e| (e, &Actor::Cli)).collect();
        log::append_all(conn, &logged)?;
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
    services
        .enrol_limiter
        .check(address, presented.as_ref().map_or("malformed", |p| p.lookup))?;
    let refused = || ServiceError::Unauthenticated("the enrollment token is not valid".into());
    let presented = presented.ok_or_else(refused)?;
    let pull = check_request(
        &services.outbound.policy,
        request.pull_url.as_deref(),
        None,
        request.pull_token.as_deref(),
    )?;
    pulls::check_resolved(&services.outbound.policy, pull.as_ref()).await?;
    let sealing = services.sealing.clone();
    let lookup = presented.lookup.to_owned();
    let token = services
        .db
        .query(move |conn| EnrollmentToken::find_by_lookup(conn, &lookup))
        .await?
        .filter(|t| presented.matches(&t.secret_hash))
        .ok_or_else(refused)?;
    let enrolled = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
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
                if !EnrollmentToken::spend(conn, &token.id)? {
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
        })
        .await?;
    Fleet::sync(services).await?;
    tracing::info!(device.id = %enrolled.device.id, "device enrolled itself");
    Ok(enrolled)
}

fn exhausted(token: &EnrollmentToken) -> ServiceError {
    ServiceError::Forbidden(format!(
        "the enrollment token has been used {} of {} times",
        token.uses, token.max_uses
    ))
}

/// Refuses a token that is revoked, expired or used up, saying which.
fn usable(token: &EnrollmentToken, at: NaiveDateTime) -> Result<(), ServiceError> {
    if token.revoked_at.is_some() {
        return Err(ServiceError::Forbidden("the enrollment token was revoked".into()));
    }
    if token.expires_at <= at {
        return Err(ServiceError::Forbidden(format!(
            "the enrollment token expired at {}",
            token.expires_at.and_utc().to_rfc3339()
        )));
    }
    if token.uses >= token.max_uses {
        return Err(exhausted(token));
    }
    Ok(())
}

/// Creates an enrolment token for the caller's customer.
pub async fn create_enrollment_token(
    services: &Services,
    caller: &Caller,
    draft: EnrollmentTokenDraft,
) -> Result<(EnrollmentToken, IssuedToken), ServiceError> {
    let customer = customer_of(caller)?.clone();
    let label = text::NAME.check("label", draft.label.as_deref().unwrap_or(""), false)?;
    let max_uses = draft.max_uses.unwrap_or(1);
    if !(1..=100_000).contains(&max_uses) {
        return Err(ServiceError::invalid(
            "max_uses",
            "max_uses must be a whole number from 1 to 100000",
        ));
    }
    let expires_in = match draft.expires_in.as_deref() {
        None => std::time::Duration::from_secs(7 * 86_400),
        Some(text) => parse_duration(text).map_err(|e| ServiceError::invalid("expires_in", e))?,
    };
    if expires_in.as_secs() < 60 || expires_in.as_secs() > 366 * 86_400 {
        return Err(ServiceError::invalid(
            "expires_in",
            "expires_in must be from 1m to 366d",
        ));
    }
    let issued = IssuedToken::generate(ENROLLMENT_TOKEN_PREFIX);
    let at = now();
    let token = EnrollmentToken {
        id: EnrollmentTokenId::generate(),
        customer_id: customer,
        label,
        lookup: issued.lookup.clone(),
        secret_hash: issued.secret_hash.clone(),
        max_uses,
        uses: 0,
        created_by: caller.user.to_string(),
        created_at: at,
        expires_at: at + TimeDelta::from_std(expires_in).map_err(|e| ServiceError::internal("expiry", e))?,
        revoked_at: None,
    };
    let stored = token.clone();
    services
        .db
        .query(move |conn| EnrollmentToken::insert(conn, &stored))
        .await?;
    tracing::info!(enrollment_token.id = %token.id, user.id = %caller.user, "created enrollment token");
    Ok((token, issued))
}

/// The caller's customer's enrolment tokens, newest first.
pub async fn enrollment_tokens(services: &Services, caller: &Caller) -> Result<Vec<EnrollmentToken>, ServiceError> {
    let customer = customer_of(caller)?.clone();
    Ok(services
        .db
        .query(move |conn| EnrollmentToken::of_customer(conn, &customer))
        .await?)
}

/// Revokes one of the caller's customer's enrolment tokens.
pub async fn revoke_enrollment_token(services: &Services, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let customer = customer_of(caller)?.clone();
    let not_found = || ServiceError::NotFound("enrollment token");
    let id: EnrollmentTokenId = id.parse().map_err(|_| not_found())?;
    services
        .db
        .run(move |conn| {
            let token = EnrollmentToken::find(conn, &id)?
                .filter(|t| t.customer_id == customer)
                .ok_or_else(not_found)?;
            EnrollmentToken::revoke(conn, &token.id, now())?;
            Ok::<_, ServiceError>(())
        })
        .await?;
    tracing::info!(user.id = %caller.user, "revoked enrollment token");
    Ok(())
}

/// A device visible to `scope`, with its customer's slug; 404 otherwise.
pub fn visible(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<(DeviceRecord, String), ServiceError> {
    let not_found = || ServiceError::NotFound("device");
    let id: DeviceId = id.parse().map_err(|_| not_found())?;
    let (device, slug) = DeviceRecord::find_with_customer(conn, &id)?.ok_or_else(not_found)?;
    if scope.can_see(Some(&device.customer_id)) {
        Ok((device, slug))
    } else {
        Err(not_found())
    }
}

/// One device with its labels, product, version history and install reports.
pub struct DeviceDetail {
    pub device: DeviceRecord,
    pub customer: String,
    pub product: Product,
    pub labels: Vec<(String, String)>,
    pub observations: Vec<ObservationRecord>,
    pub reports: Vec<(ReportRecord, String)>,
    /// Where and when it is pulled, and how the pulls go.
    pub pull: Option<DevicePull>,
    pub pull_failures: Vec<PullFailureRecord>,
    pub anomalies: Vec<ListedAnomaly>,
}

/// The device `id` as `scope` may see it.
pub async fn detail(services: &Services, scope: &Scope, id: String) -> Result<DeviceDetail, ServiceError> {
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let (device, customer) = visible(conn, &scope, &id)?;
            let product = Product::find(conn, &device.product_id)?.ok_or(ServiceError::NotFound("product"))?;
            Ok(DeviceDetail {
                labels: DeviceRecord::labels(conn, &device.id)?,
                observations: ObservationRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                reports: ReportRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                pull: DevicePull::find(conn, &device.id)?,
                pull_failures: PullFailureRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                anomalies: AnomalyRecord::list(conn, None, Some(&device.id), None, HISTORY_ROWS)?,
                device,
                customer,
                product,
            })
        })
        .await
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

/// What a device list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// A customer's slug: the vendor's filter (a customer admin sees its own anyway).
    pub customer: Option<String>,
    pub label: Option<(String, String)>,
    pub version: Option<String>,
    pub page: u32,
    pub per_page: u32,
}

/// One page of the live devices `scope` may see, by name, and how many there are.
pub async fn list(
    services: &Services,
    scope: &Scope,
    query: ListQuery,
) -> Result<(Vec<NamedDevice>, i64), ServiceError> {
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let customer = scoped_customer(conn, &scope, query.customer.as_deref())?;
            let filter = DeviceFilter {
                customer,
                label: query.label,
                versions: query.version.map(|v| vec![v]),
                ..DeviceFilter::default()
            };
            let offset = i64::from(query.page.max(1) - 1) * i64::from(query.per_page);
            Ok(DeviceRecord::list(conn, &filter, offset, i64::from(query.per_page))?)
        })
        .await
}
