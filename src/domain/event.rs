//! What happened, as data. Every event that changes what customers or devices may
//! trust is one variant of [`Event`], with typed ids; who did it is an [`Actor`] and
//! what it concerns a [`Subject`]. The text of its transparency-log entry is made
//! here, in [`Event::entry_text`], and nowhere else: the services produce events,
//! the log writes them, and the reactions to them (the fleet cache, tree heads,
//! webhooks) read them as values.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::log::{entry_text, LogKind};
use crate::domain::{ObservationSource, ReportState, RolloutAction, RolloutState};
use crate::ids::{CustomerId, DeviceId, EnrollmentTokenId, PatchId, RolloutId, UserId};

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Device(DeviceId),
    /// A device enrolling itself with an enrolment token.
    EnrollmentToken(EnrollmentTokenId),
    /// The server itself: keys found at start, entries backfilled.
    Server,
    /// The command line, run by whoever runs it.
    Cli,
}

impl Actor {
    /// How an actor is stored: `user:<id>`, `device:<id>`, `enrollment-token:<id>`,
    /// `server`, `cli`.
    pub fn as_text(&self) -> String {
        self.to_string()
    }

    /// An actor as stored.
    pub fn parse(text: &str) -> Result<Actor, String> {
        match text {
            "server" => Ok(Actor::Server),
            "cli" => Ok(Actor::Cli),
            _ => match text.split_once(':') {
                Some(("user", id)) => id.parse().map(Actor::User),
                Some(("device", id)) => id.parse().map(Actor::Device),
                Some(("enrollment-token", id)) => id.parse().map(Actor::EnrollmentToken),
                _ => Err(format!("`{text}` is not an actor")),
            },
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Device(id) => write!(f, "device:{id}"),
            Actor::EnrollmentToken(id) => write!(f, "enrollment-token:{id}"),
            Actor::Server => f.write_str("server"),
            Actor::Cli => f.write_str("cli"),
        }
    }
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A revision of an advisory, by its public id.
    Advisory {
        id: String,
        revision: i32,
    },
    Patch(PatchId),
    /// A signing key, by its minisign key id.
    Key(String),
    /// A release image of a product.
    Image {
        product: String,
        sha256: String,
    },
    Device(DeviceId),
    Rollout(RolloutId),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Advisory { id, revision } => write!(f, "advisory/{id}/{revision}"),
            Subject::Patch(id) => write!(f, "patch/{id}"),
            Subject::Key(id) => write!(f, "key/{id}"),
            Subject::Image { product, sha256 } => write!(f, "image/{product}/{sha256}"),
            Subject::Device(id) => write!(f, "device/{id}"),
            Subject::Rollout(id) => write!(f, "rollout/{id}"),
        }
    }
}

/// A signed revision of an advisory: published, revised or withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub public_id: String,
    pub revision: i32,
    /// Of the canonical document, exactly as signed.
    pub sha256: String,
    pub signature_sha256: String,
    pub key_id: String,
}

/// A patch as it was signed and published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPatch {
    pub patch: PatchId,
    pub sha256: String,
    pub size: i64,
    pub signature_sha256: String,
    pub key_id: String,
    pub product: String,
    pub version: String,
    pub version_scheme: String,
    pub platform: Option<String>,
    pub advisories: Vec<String>,
    pub rollback: bool,
}

/// A signing key the server started signing with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntroducedKey {
    pub key_id: String,
    /// Of the public key's text.
    pub sha256: String,
    /// The key whose rotation statement introduced it.
    pub introduced_by: Option<String>,
    pub statement_sha256: Option<String>,
    pub statement_signature_sha256: Option<String>,
    /// The statement declared the old key compromised after this log size.
    pub old_key_compromised_after: Option<u64>,
}

/// Something that changed what customers or devices may trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    AdvisoryPublished(Revision),
    AdvisoryRevised(Revision),
    AdvisoryWithdrawn(Revision),
    PatchPublished(PublishedPatch),
    PatchYanked {
        patch: PatchId,
        reason: Option<String>,
    },
    KeyIntroduced(IntroducedKey),
    KeyRetired {
        key_id: String,
        sha256: String,
    },
    ImageRegistered {
        product: String,
        sha256: String,
        version: String,
        /// Empty for every platform.
        platform: String,
    },
    DeviceEnrolled {
        customer: CustomerId,
        device: DeviceId,
        name: String,
        product: String,
        platform: Option<String>,
        version: Option<String>,
    },
    DeviceDecommissioned {
        customer: CustomerId,
        device: DeviceId,
    },
    InstallReported {
        customer: CustomerId,
        device: DeviceId,
        patch: PatchId,
        state: ReportState,
        version: Option<String>,
    },
    /// A version (and image) a device was seen running for the first time.
    FixObserved {
        customer: CustomerId,
        device: DeviceId,
        version: String,
        image_sha256: Option<String>,
        source: ObservationSource,
        seen_at: DateTime<Utc>,
    },
    /// A rollout was started, paused, resumed, advanced, finished or cancelled: the
    /// state a device told "not yet" can check.
    RolloutChanged {
        rollout: RolloutId,
        patch: PatchId,
        action: RolloutAction,
        state: RolloutState,
        /// The open wave (from 0), once started.
        wave: Option<u32>,
        reason: Option<String>,
    },
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl Event {
    pub fn kind(&self) -> LogKind {
        match self {
            Event::AdvisoryPublished(_) => LogKind::AdvisoryPublished,
            Event::AdvisoryRevised(_) => LogKind::AdvisoryRevised,
            Event::AdvisoryWithdrawn(_) => LogKind::AdvisoryWithdrawn,
            Event::PatchPublished(_) => LogKind::PatchPublished,
            Event::PatchYanked { .. } => LogKind::PatchYanked,
            Event::KeyIntroduced(_) => LogKind::KeyIntroduced,
            Event::KeyRetired { .. } => LogKind::KeyRetired,
            Event::ImageRegistered { .. } => LogKind::ImageRegistered,
            Event::DeviceEnrolled { .. } => LogKind::DeviceEnrolled,
            Event::DeviceDecommissioned { .. } => LogKind::DeviceDecommissioned,
            Event::InstallReported { .. } => LogKind::InstallReported,
            Event::FixObserved { .. } => LogKind::FixObserved,
            Event::RolloutChanged { .. } => LogKind::RolloutChanged,
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Event::AdvisoryPublished(r) | Event::AdvisoryRevised(r) | Event::AdvisoryWithdrawn(r) => {
                Subject::Advisory {
                    id: r.public_id.clone(),
                    revision: r.revision,
                }
            }
            Event::PatchPublished(p) => Subject::Patch(p.patch.clone()),
            Event::PatchYanked { patch, .. } => Subject::Patch(patch.clone()),
            Event::KeyIntroduced(k) => Subject::Key(k.key_id.clone()),
            Event::KeyRetired { key_id, .. } => Subject::Key(key_id.clone()),
            Event::ImageRegistered { product, sha256, .. } => Subject::Image {
                product: product.clone(),
                sha256: sha256.clone(),
            },
            Event::DeviceEnrolled { device, .. }
            | Event::DeviceDecommissioned { device, .. }
            | Event::InstallReported { device, .. }
            | Event::FixObserved { device, .. } => Subject::Device(device.clone()),
            Event::RolloutChanged { rollout, .. } => Subject::Rollout(rollout.clone()),
        }
    }

    /// The customer whose fleet it concerns: its log entry is sealed for them.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            Event::DeviceEnrolled { customer, .. }
            | Event::DeviceDecommissioned { customer, .. }
            | Event::InstallReported { customer, .. }
            | Event::FixObserved { customer, .. } => Some(customer),
            _ => None,
        }
    }

    /// Whether it changes what devices may be offered.
    pub fn changes_offers(&self) -> bool {
        matches!(
            self,
            Event::AdvisoryPublished(_)
                | Event::AdvisoryRevised(_)
                | Event::AdvisoryWithdrawn(_)
                | Event::PatchPublished(_)
                | Event::PatchYanked { .. }
                | Event::RolloutChanged { .. }
        )
    }

    /// The fields of its entry, besides the version, kind, subject and time.
    fn fields(&self) -> Map<String, Value> {
        let mut fields = match self {
            Event::AdvisoryPublished(r) | Event::AdvisoryRevised(r) | Event::AdvisoryWithdrawn(r) => object([
                ("revision", r.revision.into()),
                ("sha256", r.sha256.clone().into()),
                ("signature_sha256", r.signature_sha256.clone().into()),
                ("key_id", r.key_id.clone().into()),
            ]),
            Event::PatchPublished(p) => object([
                ("sha256", p.sha256.clone().into()),
                ("size", p.size.into()),
                ("signature_sha256", p.signature_sha256.clone().into()),
                ("key_id", p.key_id.clone().into()),
                ("product", p.product.clone().into()),
                ("version", p.version.clone().into()),
                ("version_scheme", p.version_scheme.clone().into()),
                ("platform", p.platform.clone().into()),
                ("advisories", p.advisories.clone().into()),
                ("rollback", p.rollback.into()),
            ]),
            Event::PatchYanked { reason, .. } => object([("reason", reason.clone().into())]),
            Event::KeyIntroduced(k) => {
                let mut fields = object([
                    ("key_id", k.key_id.clone().into()),
                    ("sha256", k.sha256.clone().into()),
                    ("introduced_by", k.introduced_by.clone().into()),
                    ("statement_sha256", k.statement_sha256.clone().into()),
                    (
                        "statement_signature_sha256",
                        k.statement_signature_sha256.clone().into(),
                    ),
                ]);
                // Only a rotation forced by a leak says it, so routine ones read as before.
                if let Some(size) = k.old_key_compromised_after {
                    fields.insert("old_key_compromised_after".into(), size.into());
                }
                fields
            }
            Event::KeyRetired { key_id, sha256 } => {
                object([("key_id", key_id.clone().into()), ("sha256", sha256.clone().into())])
            }
            Event::ImageRegistered {
                product,
                sha256,
                version,
                platform,
            } => object([
                ("sha256", sha256.clone().into()),
                ("product", product.clone().into()),
                ("version", version.clone().into()),
                ("platform", platform.clone().into()),
            ]),
            Event::DeviceEnrolled {
                device,
                name,
                product,
                platform,
                version,
                ..
            } => object([
                ("device", device.as_str().into()),
                ("name", name.clone().into()),
                ("product", product.clone().into()),
                ("platform", platform.clone().into()),
                ("version", version.clone().into()),
            ]),
            Event::DeviceDecommissioned { device, .. } => object([("device", device.as_str().into())]),
            Event::InstallReported {
                device,
                patch,
                state,
                version,
                ..
            } => object([
                ("device", device.as_str().into()),
                ("patch", patch.as_str().into()),
                ("state", state.as_str().into()),
                ("version", version.clone().into()),
            ]),
            Event::FixObserved {
                device,
                version,
                image_sha256,
                source,
                seen_at,
                ..
            } => object([
                ("device", device.as_str().into()),
                ("version", version.clone().into()),
                ("image_sha256", image_sha256.clone().into()),
                ("source", source.as_str().into()),
                (
                    "seen_at",
                    seen_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into(),
                ),
            ]),
            Event::RolloutChanged {
                patch,
                action,
                state,
                wave,
                reason,
                ..
            } => object([
                ("patch", patch.as_str().into()),
                ("action", action.as_str().into()),
                ("state", state.as_str().into()),
                ("wave", (*wave).into()),
                ("reason", reason.clone().into()),
            ]),
        };
        if let Some(customer) = self.customer() {
            fields.insert("customer".into(), customer.as_str().into());
        }
        fields
    }

    /// The canonical text of its log entry at `at`: for a customer's event, the
    /// text that the public leaf's commitment seals.
    pub fn entry_text(&self, at: DateTime<Utc>) -> String {
        entry_text(self.kind(), &self.subject().to_string(), at, self.fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::log::sha256_hex;

    fn id<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: fmt::Debug,
    {
        text.parse().unwrap()
    }

    /// One event of each kind, with the values the texts below were made from.
    fn one_of_each() -> Vec<Event> {
        let sha = "ab".repeat(32);
        let device: DeviceId = id("0190a000-0000-7000-8000-000000000001");
        let patch: PatchId = id("0190a000-0000-7000-8000-000000000002");
        let customer: CustomerId = id("0190a000-0000-7000-8000-000000000003");
        let revision = |n| Revision {
            public_id: "PW-2026-0001".into(),
            revision: n,
            sha256: sha.clone(),
            signature_sha256: "cd".repeat(32),
            key_id: "0123456789ABCDEF".into(),
        };
        let key = |introduced: bool| IntroducedKey {
            key_id: "0123456789ABCDEF".into(),
            sha256: sha.clone(),
            introduced_by: introduced.then(|| "FEDCBA9876543210".into()),
            statement_sha256: introduced.then(|| "ee".repeat(32)),
            statement_signature_sha256: introduced.then(|| "ff".repeat(32)),
            old_key_compromised_after: None,
        };
        vec![
            Event::AdvisoryPublished(revision(1)),
            Event::AdvisoryRevised(revision(2)),
            Event::AdvisoryWithdrawn(revision(3)),
            Event::PatchPublished(PublishedPatch {
                patch: patch.clone(),
                sha256: sha.clone(),
                size: 4096,
                signature_sha256: "cd".repeat(32),
                key_id: "0123456789ABCDEF".into(),
                product: "screenos".into(),
                version: "6.3.0r21".into(),
                version_scheme: "vendor".into(),
                platform: Some("ssg-500".into()),
                advisories: vec!["PW-2026-0001".into()],
                rollback: false,
            }),
            Event::PatchYanked {
                patch: patch.clone(),
                reason: Some("bricks it".into()),
            },
            Event::KeyIntroduced(key(true)),
            Event::KeyIntroduced(key(false)),
            Event::KeyRetired {
                key_id: "0123456789ABCDEF".into(),
                sha256: sha.clone(),
            },
            Event::ImageRegistered {
                product: "screenos".into(),
                sha256: sha.clone(),
                version: "6.3.0r21".into(),
                platform: "any".into(),
            },
            Event::DeviceEnrolled {
                customer: customer.clone(),
                device: device.clone(),
                name: "fw-1".into(),
                product: "screenos".into(),
                platform: Some("ssg-500".into()),
                version: Some("6.3.0r20".into()),
            },
            Event::DeviceDecommissioned {
                customer: customer.clone(),
                device: device.clone(),
            },
            Event::InstallReported {
                customer: customer.clone(),
                device: device.clone(),
                patch,
                state: ReportState::Installed,
                version: Some("6.3.0r21".into()),
            },
            Event::FixObserved {
                customer,
                device,
                version: "6.3.0r21".into(),
                image_sha256: Some(sha),
                source: ObservationSource::Poll,
                seen_at: "2027-01-15T08:00:00Z".parse().unwrap(),
            },
            Event::RolloutChanged {
                rollout: id("0190a000-0000-7000-8000-000000000004"),
                patch: id("0190a000-0000-7000-8000-000000000002"),
                action: RolloutAction::Paused,
                state: RolloutState::Paused,
                wave: Some(0),
                reason: Some("3 of 20 installs failed".into()),
            },
        ]
    }

    /// The texts and leaf hashes that entries of each kind had when they were made
    /// from maps of fields, before events were typed (and, for kinds added since,
    /// when they were first logged): entries logged then read and hash the same now.
    const LOGGED_BEFORE: [(&str, &str, &str); CASES] = [
        (
            "advisory.published",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"advisory.published\",\"revision\":1,\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"signature_sha256\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\",\"subject\":\"advisory/PW-2026-0001/1\",\"v\":1}",
            "74c1b52936a93053c9217d7104bfc6a5ac86440b0f2857fa796024fa3e2d5185",
        ),
        (
            "advisory.revised",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"advisory.revised\",\"revision\":2,\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"signature_sha256\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\",\"subject\":\"advisory/PW-2026-0001/2\",\"v\":1}",
            "6e6dee70480d9cde212516daec2be2f0013db3b0b113665c5bbbd005194da81d",
        ),
        (
            "advisory.withdrawn",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"advisory.withdrawn\",\"revision\":3,\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"signature_sha256\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\",\"subject\":\"advisory/PW-2026-0001/3\",\"v\":1}",
            "a413058a5902421d9152093f78c89b17544455f97a5ae0c14566ebfe745d2efc",
        ),
        (
            "patch.published",
            "{\"advisories\":[\"PW-2026-0001\"],\"at\":\"2027-01-15T08:00:00.123456Z\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"patch.published\",\"platform\":\"ssg-500\",\"product\":\"screenos\",\"rollback\":false,\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"signature_sha256\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\",\"size\":4096,\"subject\":\"patch/0190a000-0000-7000-8000-000000000002\",\"v\":1,\"version\":\"6.3.0r21\",\"version_scheme\":\"vendor\"}",
            "d6ef77321be157bbe48ff1d3169c6057f548882bdd32f18ea2e4e7d5a55e19a0",
        ),
        (
            "patch.yanked",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"kind\":\"patch.yanked\",\"reason\":\"bricks it\",\"subject\":\"patch/0190a000-0000-7000-8000-000000000002\",\"v\":1}",
            "008458d7aa7ed05b2b64520c27c193523935f8142988e6fd2c64896ebd2635d0",
        ),
        (
            "key.introduced",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"introduced_by\":\"FEDCBA9876543210\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"key.introduced\",\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"statement_sha256\":\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\",\"statement_signature_sha256\":\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\",\"subject\":\"key/0123456789ABCDEF\",\"v\":1}",
            "2e1866d569e876611a88620f9030a129b53fb98bc6d596c73918b3df1180a377",
        ),
        (
            "key.introduced",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"introduced_by\":null,\"key_id\":\"0123456789ABCDEF\",\"kind\":\"key.introduced\",\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"statement_sha256\":null,\"statement_signature_sha256\":null,\"subject\":\"key/0123456789ABCDEF\",\"v\":1}",
            "cf9439023f26c1a5438cc255dcf624849434e000ba4093552499b877e567d4fa",
        ),
        (
            "key.retired",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"key_id\":\"0123456789ABCDEF\",\"kind\":\"key.retired\",\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"subject\":\"key/0123456789ABCDEF\",\"v\":1}",
            "99ef0986b9d6c4316753657e10ba7de4ccc479d781fd8c3a92724ed73e76405d",
        ),
        (
            "image.registered",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"kind\":\"image.registered\",\"platform\":\"any\",\"product\":\"screenos\",\"sha256\":\"abababababababababababababababababababababababababababababababab\",\"subject\":\"image/screenos/abababababababababababababababababababababababababababababababab\",\"v\":1,\"version\":\"6.3.0r21\"}",
            "d89c503a63692f92e099d45c20ff1fbb52d46dc9bd7c8a20a4c1646d522582ea",
        ),
        (
            "device.enrolled",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"customer\":\"0190a000-0000-7000-8000-000000000003\",\"device\":\"0190a000-0000-7000-8000-000000000001\",\"kind\":\"device.enrolled\",\"name\":\"fw-1\",\"platform\":\"ssg-500\",\"product\":\"screenos\",\"subject\":\"device/0190a000-0000-7000-8000-000000000001\",\"v\":1,\"version\":\"6.3.0r20\"}",
            "9520c3a84420c15d60a46825229c81db94538e3fdb3654ebcfba62c02f3a0d5d",
        ),
        (
            "device.decommissioned",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"customer\":\"0190a000-0000-7000-8000-000000000003\",\"device\":\"0190a000-0000-7000-8000-000000000001\",\"kind\":\"device.decommissioned\",\"subject\":\"device/0190a000-0000-7000-8000-000000000001\",\"v\":1}",
            "b5b4eab83ffb769fccfa896ce15f9fbbaf4f7f6ad78926afa542d498e6b47815",
        ),
        (
            "install.reported",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"customer\":\"0190a000-0000-7000-8000-000000000003\",\"device\":\"0190a000-0000-7000-8000-000000000001\",\"kind\":\"install.reported\",\"patch\":\"0190a000-0000-7000-8000-000000000002\",\"state\":\"installed\",\"subject\":\"device/0190a000-0000-7000-8000-000000000001\",\"v\":1,\"version\":\"6.3.0r21\"}",
            "609d56af4eb0c51b3a9e99d578abc2820fa3205459243e8c3af5ad34fd07e652",
        ),
        (
            "fix.observed",
            "{\"at\":\"2027-01-15T08:00:00.123456Z\",\"customer\":\"0190a000-0000-7000-8000-000000000003\",\"device\":\"0190a000-0000-7000-8000-000000000001\",\"image_sha256\":\"abababababababababababababababababababababababababababababababab\",\"kind\":\"fix.observed\",\"seen_at\":\"2027-01-15T08:00:00Z\",\"source\":\"poll\",\"subject\":\"device/0190a000-0000-7000-8000-000000000001\",\"v\":1,\"version\":\"6.3.0r21\"}",
            "e53c41af3dccee210339e35c8710d1f566b81f0a6e198544a22bebeb16f75416",
        ),
        (
            "rollout.changed",
            "{\"action\":\"paused\",\"at\":\"2027-01-15T08:00:00.123456Z\",\"kind\":\"rollout.changed\",\"patch\":\"0190a000-0000-7000-8000-000000000002\",\"reason\":\"3 of 20 installs failed\",\"state\":\"paused\",\"subject\":\"rollout/0190a000-0000-7000-8000-000000000004\",\"v\":1,\"wave\":0}",
            "6e2662792da1bf0ae8b71dbe22afea41139e331ab618429b96afb4e260ae7f87",
        ),
    ];
    const CASES: usize = 14;

    #[test]
    fn entries_read_and_hash_as_they_did_before_events_were_typed() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap();
        let events = one_of_each();
        assert_eq!(events.len(), LOGGED_BEFORE.len());
        let kinds: std::collections::HashSet<LogKind> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds.len(), LogKind::ALL.len(), "every kind of entry is covered");
        for (event, (kind, text, hash)) in events.iter().zip(LOGGED_BEFORE) {
            assert_eq!(event.kind().as_str(), kind);
            let made = event.entry_text(at);
            assert_eq!(made, text, "{kind}");
            assert_eq!(sha256_hex(made.as_bytes()), hash, "{kind}");
        }
    }

    #[test]
    fn actors_and_subjects_read_back_from_their_text() {
        let user: UserId = id("0190a000-0000-7000-8000-0000000000aa");
        for actor in [Actor::User(user), Actor::Server, Actor::Cli] {
            assert_eq!(Actor::parse(&actor.as_text()), Ok(actor));
        }
        assert!(Actor::parse("root").is_err());
        assert!(Actor::parse("user:not-an-id").is_err());
        let subject = Subject::Advisory {
            id: "PW-2026-0001".into(),
            revision: 2,
        };
        assert_eq!(subject.to_string(), "advisory/PW-2026-0001/2");
    }
}
