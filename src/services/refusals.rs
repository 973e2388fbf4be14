//! Requests refused to protect the service from one caller, counted by why, for
//! `/metrics`: a flood shows there before anyone else notices it. Addresses the
//! outbound policy denies are counted by the outbound clients themselves
//! (`services::outbound`), and read from there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::ServiceError;

/// What one customer or user may keep at most: each input a caller controls that
/// grows what is stored has a cap, so no caller fills the database for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// Webhooks of one customer.
    Webhooks,
    /// API tokens of one user that are neither revoked nor expired.
    ApiTokens,
    /// Enrolment tokens of one customer that are neither revoked, expired nor used up.
    EnrollmentTokens,
    /// Users of one customer.
    Users,
}

impl Cap {
    /// How many are allowed.
    pub const fn limit(self) -> usize {
        match self {
            Cap::Webhooks => 20,
            Cap::ApiTokens => 50,
            Cap::EnrollmentTokens => 100,
            Cap::Users => 1000,
        }
    }

    /// What is capped, as the metric's label.
    pub const fn what(self) -> &'static str {
        match self {
            Cap::Webhooks => "webhooks",
            Cap::ApiTokens => "api_tokens",
            Cap::EnrollmentTokens => "enrollment_tokens",
            Cap::Users => "users",
        }
    }

    /// The refusal's message: what is full and how to make room.
    pub fn message(self) -> String {
        let limit = self.limit();
        match self {
            Cap::Webhooks => format!("a customer may have at most {limit} webhooks; delete one first"),
            Cap::ApiTokens => format!("a user may have at most {limit} live API tokens; revoke one first"),
            Cap::EnrollmentTokens => {
                format!("a customer may have at most {limit} usable enrollment tokens; revoke one first")
            }
            Cap::Users => format!("a customer may have at most {limit} users; delete one first"),
        }
    }

    /// Refuses with this cap when `held` already fills it.
    pub fn check(self, held: i64) -> Result<(), ServiceError> {
        if usize::try_from(held).unwrap_or(usize::MAX) >= self.limit() {
            Err(ServiceError::OverCap(self))
        } else {
            Ok(())
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A device past its polls and reports a minute.
    DeviceRate,
    /// Login attempts past the account's or address's budget.
    LoginRate,
    /// Enrolments past the token's or address's budget.
    EnrollmentRate,
    /// Evidence bundles past the customer's budget.
    EvidenceRate,
    /// Webhook pings and deliveries sent again past the customer's budget.
    WebhookRate,
    /// A new one past what its owner may keep.
    OverCap(Cap),
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::DeviceRate,
        Refusal::LoginRate,
        Refusal::EnrollmentRate,
        Refusal::EvidenceRate,
        Refusal::WebhookRate,
        Refusal::OverCap(Cap::Webhooks),
        Refusal::OverCap(Cap::ApiTokens),
        Refusal::OverCap(Cap::EnrollmentTokens),
        Refusal::OverCap(Cap::Users),
    ];

    /// The reason and what it limits, as the metric's labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Refusal::DeviceRate => ("rate_limited", "device"),
            Refusal::LoginRate => ("rate_limited", "login"),
            Refusal::EnrollmentRate => ("rate_limited", "enrollment"),
            Refusal::EvidenceRate => ("rate_limited", "evidence"),
            Refusal::WebhookRate => ("rate_limited", "webhook"),
            Refusal::OverCap(cap) => ("over_cap", cap.what()),
        }
    }

    fn slot(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Refusals of this instance, by why.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Refusal::ALL.len()],
}

impl Refusals {
    pub fn count(&self, why: Refusal) {
        self.counts[why.slot()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, why: Refusal) -> u64 {
        self.counts[why.slot()].load(Ordering::Relaxed)
    }

    /// Counts a refusal for being over a rate, and makes its error (429 after `wait`).
    pub fn rate_limited(&self, why: Refusal, wait: Duration) -> ServiceError {
        self.count(why);
        ServiceError::RateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        }
    }

    /// Counts `result`'s refusal when it is a rate limit (as `why`) or a full cap.
    pub fn note<T>(&self, why: Refusal, result: Result<T, ServiceError>) -> Result<T, ServiceError> {
        match &result {
            Err(ServiceError::RateLimited { .. }) => self.count(why),
            Err(ServiceError::OverCap(cap)) => self.count(Refusal::OverCap(*cap)),
            _ => {}
        }
        result
    }

    /// Counts `result`'s refusal when a cap is full.
    pub fn note_cap<T>(&self, result: Result<T, ServiceError>) -> Result<T, ServiceError> {
        if let Err(ServiceError::OverCap(cap)) = &result {
            self.count(Refusal::OverCap(*cap));
        }
        result
    }
}
