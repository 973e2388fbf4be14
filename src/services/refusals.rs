//! Requests refused to protect the service from one caller, counted by why, for
//! `/metrics`: a flood shows there before anyone else notices it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::ServiceError;

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
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::DeviceRate,
        Refusal::LoginRate,
        Refusal::EnrollmentRate,
        Refusal::EvidenceRate,
        Refusal::WebhookRate,
    ];

    /// The reason and what it limits, as the metric's labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Refusal::DeviceRate => ("rate_limited", "device"),
            Refusal::LoginRate => ("rate_limited", "login"),
            Refusal::EnrollmentRate => ("rate_limited", "enrollment"),
            Refusal::EvidenceRate => ("rate_limited", "evidence"),
            Refusal::WebhookRate => ("rate_limited", "webhook"),
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

    /// Counts `result`'s refusal when it is a rate limit.
    pub fn note<T>(&self, why: Refusal, result: Result<T, ServiceError>) -> Result<T, ServiceError> {
        if let Err(ServiceError::RateLimited { .. }) = &result {
            self.count(why);
        }
        result
    }
}
