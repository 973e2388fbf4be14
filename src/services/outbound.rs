//! Requests this server makes to addresses its users give it: device pulls and
//! webhook deliveries. Every connection goes through the address policy: a URL
//! must be `http` or `https`, a literal address is checked before the request and a
//! name after it is resolved (so a name that resolves to a denied address is
//! refused), redirects are never followed, and no proxy from the environment is
//! used. Failures are sorted into the reasons a history shows.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::domain::network::AddressPolicy;
use crate::domain::PullFailure;

/// A refused connection: the address policy denies every address of the host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Denied(String);

/// A name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unresolved(String);

/// Resolves names with the system resolver and keeps only allowed addresses.
struct PolicyResolver(Arc<AddressPolicy>, Arc<std::sync::atomic::AtomicU64>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let denied = self.1.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| {
                    Box::new(Unresolved(format!("{host} does not resolve: {e}"))) as Box<dyn StdError + Send + Sync>
                })?
                .collect();
            let mut reasons = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        reasons.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                if !reasons.is_empty() {
                    denied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let why = if reasons.is_empty() {
                    format!("{host} has no addresses")
                } else {
                    format!("{host} resolves to denied addresses only: {}", reasons.join("; "))
                };
                return Err(Box::new(Denied(why)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Why an outbound request failed, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: PullFailure,
    pub detail: String,
    /// The HTTP status, for [`PullFailure::Status`].
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(reason: PullFailure, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
            status: None,
        }
    }

    /// Worth asking again at once: the connection was refused or broke, or the
    /// other side said it is overloaded or failing (429, 5xx).
    pub fn transient(&self) -> bool {
        match self.reason {
            PullFailure::Refused | PullFailure::Connection => true,
            PullFailure::Status => self.status.is_some_and(|s| s == 429 || s >= 500),
            _ => false,
        }
    }

    /// Sorts a request error into a reason.
    pub fn of(err: &reqwest::Error) -> Failure {
        let mut chain = Vec::new();
        let mut source: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(denied) = e.downcast_ref::<Denied>() {
                return Failure::new(PullFailure::DeniedAddress, denied.0.clone());
            }
            if let Some(unresolved) = e.downcast_ref::<Unresolved>() {
                return Failure::new(PullFailure::Dns, unresolved.0.clone());
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return Failure::new(PullFailure::Refused, "connection refused");
                }
            }
            chain.push(e.to_string());
            source = e.source();
        }
        // The URL is not part of the detail: it may carry credentials.
        let text = chain.iter().skip(1).cloned().collect::<Vec<_>>().join(": ");
        let lower = text.to_lowercase();
        if err.is_timeout() {
            Failure::new(PullFailure::Timeout, "no complete answer in time")
        } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            Failure::new(PullFailure::Tls, text)
        } else {
            Failure::new(
                PullFailure::Connection,
                if text.is_empty() {
                    "the connection failed".into()
                } else {
                    text
                },
            )
        }
    }
}

/// Checks the form of a URL users give for outbound requests: `http` or `https`,
/// a host, no credentials or fragment, not too long.
fn check_form(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme `{}` is not http or https", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; give a token instead".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    if url.as_str().len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    Ok(url)
}

/// Checks a URL's host when it is a literal address (names are checked when they
/// resolve).
fn check_literal(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    match url.host() {
        None => Err("has no host".into()),
        Some(url::Host::Ipv4(ip)) => policy.check(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => policy.check(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => Ok(()),
    }
}

/// Checks the addresses a URL's host name resolves to now. A name that does not
/// resolve here is let through: it is checked again at every connection.
async fn check_name(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    let Some(url::Host::Domain(name)) = url.host() else {
        return Ok(());
    };
    let Ok(found) = tokio::net::lookup_host((name, url.port_or_known_default().unwrap_or(0))).await else {
        return Ok(());
    };
    for address in found {
        policy
            .check(address.ip())
            .map_err(|why| format!("{name} resolves to a denied address: {why}"))?;
    }
    Ok(())
}

/// The HTTP client for outbound requests, and the per-host limits.
#[derive(Clone)]
pub struct Outbound {
    pub client: reqwest::Client,
    pub policy: Arc<AddressPolicy>,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    /// Requests refused because every address their host resolved to is denied.
    denied: Arc<std::sync::atomic::AtomicU64>,
}

impl Outbound {
    pub fn new(policy: AddressPolicy, connect_timeout: Duration, per_host: usize) -> anyhow::Result<Outbound> {
        let policy = Arc::new(policy);
        let denied = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(policy.clone(), denied.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(per_host)
            .tcp_nodelay(true)
            .user_agent(concat!("patchwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound {
            client,
            policy,
            per_host,
            hosts: Arc::new(Mutex::new(HashMap::new())),
            denied,
        })
    }

    /// The client for device pulls, by the configured policy and limits.
    pub fn for_pulls(config: &crate::config::Config) -> anyhow::Result<Outbound> {
        Outbound::new(
            config.outbound.clone(),
            config.pulls.connect_timeout,
            config.pulls.per_host,
        )
    }

    /// Addresses refused so far: URLs users gave whose host the policy denies, and
    /// connections whose host resolved to denied addresses only.
    pub fn denied(&self) -> u64 {
        self.denied.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn counted(&self, checked: Result<(), String>) -> Result<(), String> {
        if checked.is_err() {
            self.denied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        checked
    }

    /// Checks a URL users give for outbound requests: its form, and (for a literal
    /// address) the policy. A name is checked when it resolves ([`Self::check_resolved`],
    /// and at every connection).
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        let url = check_form(text)?;
        self.check_host(&url)?;
        Ok(url)
    }

    /// Checks a URL's host when it is a literal address.
    pub fn check_host(&self, url: &Url) -> Result<(), String> {
        self.counted(check_literal(url, &self.policy))
    }

    /// Checks the addresses a URL's host name resolves to now.
    pub async fn check_resolved(&self, url: &Url) -> Result<(), String> {
        self.counted(check_name(url, &self.policy).await)
    }

    /// Waits for a free slot for `url`'s host; the slot is freed when the permit
    /// is dropped, and hosts with no request in flight are forgotten.
    pub async fn host_slot(&self, url: &Url) -> HostSlot {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        let permit = semaphore.acquire_owned().await.ok();
        HostSlot {
            permit,
            key,
            hosts: self.hosts.clone(),
        }
    }
}

/// A slot of a host's limit.
pub struct HostSlot {
    permit: Option<OwnedSemaphorePermit>,
    key: String,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds the semaphore and nobody waits on it: forget the host.
        if hosts.get(&self.key).is_some_and(|s| Arc::strong_count(s) == 1) {
            hosts.remove(&self.key);
        }
    }
}

/// Reads a response body, at most `max` bytes; `None` when it is longer.
pub async fn read_capped(response: reqwest::Response, max: usize) -> Result<Option<Vec<u8>>, Failure> {
    use futures_util::StreamExt;
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::of(&e))?;
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
