//! The states that rows move through, as enums. Each converts to and from the text
//! the database stores in one place; a stored value the code does not know is an
//! error when the row is read, never a default.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stored state or role text that no variant matches.
#[derive(Debug, thiserror::Error)]
#[error("the database holds `{value}`, which is not a known {kind}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

/// A stored state that may be absent: `NULL` reads as `None`, a known text as its
/// variant, and anything else is an error like any other stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Maybe<T>(pub Option<T>);

impl<T: std::str::FromStr<Err = UnknownValue>> TryFrom<Option<String>> for Maybe<T> {
    type Error = UnknownValue;

    fn try_from(text: Option<String>) -> Result<Self, UnknownValue> {
        text.map(|t| t.parse()).transpose().map(Maybe)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| UnknownValue { kind: $kind, value: text.to_owned() })
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;

            fn try_from(text: String) -> Result<Self, UnknownValue> {
                text.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where an advisory stands: a draft, published (with revisions), or withdrawn.
    AdvisoryStatus, "advisory status" {
        Draft => "draft",
        Published => "published",
        Withdrawn => "withdrawn",
    }
);

text_enum!(
    /// Who may read an advisory (the Traffic Light Protocol labels of CSAF 2.0):
    /// everyone (WHITE), or only the customers it names besides the vendor (AMBER:
    /// their organisations; RED: the named recipients alone).
    Tlp, "TLP label" {
        White => "WHITE",
        Amber => "AMBER",
        Red => "RED",
    }
);

impl Tlp {
    /// Whether only the customers an advisory names may read it.
    pub fn restricted(self) -> bool {
        self != Tlp::White
    }

    /// The folder name of its CSAF distribution (`white`, `amber`, `red`).
    pub fn folder(self) -> &'static str {
        match self {
            Tlp::White => "white",
            Tlp::Amber => "amber",
            Tlp::Red => "red",
        }
    }
}

text_enum!(
    /// Where a patch stands: a draft (its file may change), published (signed and
    /// offered), or yanked (listed with its reason, no longer served).
    PatchState, "patch state" {
        Draft => "draft",
        Published => "published",
        Yanked => "yanked",
    }
);

text_enum!(
    /// What one signed revision of an advisory says: published, or withdrawn.
    RevisionStatus, "revision status" {
        Published => "published",
        Withdrawn => "withdrawn",
    }
);

impl From<RevisionStatus> for AdvisoryStatus {
    fn from(status: RevisionStatus) -> Self {
        match status {
            RevisionStatus::Published => AdvisoryStatus::Published,
            RevisionStatus::Withdrawn => AdvisoryStatus::Withdrawn,
        }
    }
}

text_enum!(
    /// A step of installing a patch, as a device reports it.
    ReportState, "install report state" {
        Downloading => "downloading",
        Downloaded => "downloaded",
        Installing => "installing",
        Installed => "installed",
        Failed => "failed",
        RolledBack => "rolled_back",
    }
);

impl ReportState {
    /// Whether the device is in the middle of an install (and can stall there).
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            ReportState::Downloading | ReportState::Downloaded | ReportState::Installing
        )
    }
}

text_enum!(
    /// Where a rollout stands. In a draft nothing is offered yet; running, the waves
    /// opened so far are offered the patch; paused and cancelled, no device is
    /// offered it anew; finished, every device it applies to is.
    RolloutState, "rollout state" {
        Draft => "draft",
        Running => "running",
        Paused => "paused",
        Finished => "finished",
        Cancelled => "cancelled",
    }
);

impl RolloutState {
    /// Whether the rollout still decides who is offered its patch.
    pub fn in_force(self) -> bool {
        matches!(self, RolloutState::Draft | RolloutState::Running | RolloutState::Paused)
    }
}

text_enum!(
    /// How a wave that met its success threshold moves on: by itself, or when an
    /// operator advances it.
    WaveGate, "wave gate" {
        Auto => "auto",
        Manual => "manual",
    }
);

text_enum!(
    /// A line of a rollout's history: what was done to it, or what it did itself; a
    /// customer's hold, release or acceleration of its own devices.
    RolloutAction, "rollout action" {
        Created => "created",
        Started => "started",
        Paused => "paused",
        Resumed => "resumed",
        Advanced => "advanced",
        Finished => "finished",
        Cancelled => "cancelled",
        HeldByCustomer => "held_by_customer",
        ReleasedByCustomer => "released_by_customer",
        AcceleratedByCustomer => "accelerated_by_customer",
    }
);

text_enum!(
    /// How a device's version was learnt.
    ObservationSource, "observation source" {
        Poll => "poll",
        Report => "report",
        Pull => "pull",
        Admin => "admin",
    }
);

impl ObservationSource {
    /// Whether the version seen is what the device runs. A report names what the
    /// device says it installed: a claim until a poll or a pull shows it running.
    pub fn shows_running(self) -> bool {
        !matches!(self, ObservationSource::Report)
    }
}

text_enum!(
    /// Where one device stands against one advisory.
    ExposureState, "exposure state" {
        Affected => "affected",
        Fixed => "fixed",
        Unaffected => "unaffected",
        Unknown => "unknown",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_event_lists_read_back_and_refuse_unknown_names() {
        let events = EventTypes(vec![EventType::Anomaly, EventType::DeviceStale]);
        assert_eq!(events.to_text(), "anomaly,device.stale");
        assert_eq!(EventTypes::try_from(events.to_text()).unwrap(), events);
        let err = EventTypes::try_from("anomaly,device.exploded".to_owned()).unwrap_err();
        assert!(err.to_string().contains("`device.exploded`"), "{err}");
    }

    #[test]
    fn every_state_round_trips_and_unknown_text_is_an_error() {
        for s in AdvisoryStatus::ALL {
            assert_eq!(s.as_str().parse::<AdvisoryStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in PatchState::ALL {
            assert_eq!(PatchState::try_from(s.as_str().to_owned()).unwrap(), *s);
        }
        let err = PatchState::try_from("Published".to_owned()).unwrap_err();
        assert!(err.to_string().contains("`Published`"), "{err}");
        assert!("archived".parse::<AdvisoryStatus>().is_err());
    }
}

text_enum!(
    /// Why a pull did not yield a version.
    PullFailure, "pull failure" {
        Timeout => "timeout",
        Refused => "refused",
        Connection => "connection",
        Dns => "dns",
        Tls => "tls",
        Status => "status",
        BadJson => "bad_json",
        TooLarge => "too_large",
        DeniedAddress => "denied_address",
    }
);

text_enum!(
    /// What a device did that no signed release or install report explains.
    AnomalyKind, "anomaly kind" {
        VersionBackwards => "version_backwards",
        UnknownImage => "unknown_image",
        UnannouncedChange => "unannounced_change",
        UnreachableInEmergency => "unreachable_in_emergency",
        DeviceStale => "device_stale",
    }
);

impl AnomalyKind {
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyKind::VersionBackwards => "version went backwards without a reported rollback",
            AnomalyKind::UnknownImage => "image matches no published patch and no registered release image",
            AnomalyKind::UnannouncedChange => "running version changed without an install report",
            AnomalyKind::UnreachableInEmergency => "unreachable while an emergency advisory affects it",
            AnomalyKind::DeviceStale => "cut off from genuine answers: no fresh signed tree head for too long",
        }
    }
}

text_enum!(
    /// What a webhook can subscribe to.
    EventType, "webhook event type" {
        AdvisoryPublished => "advisory.published",
        AdvisoryRevised => "advisory.revised",
        Emergency => "emergency",
        Anomaly => "anomaly",
        DeviceUnreachable => "device.unreachable",
        DeviceStale => "device.stale",
        DeadlineOverdue => "deadline.overdue",
        RolloutPaused => "rollout.paused",
        RolloutAdvanced => "rollout.advanced",
        RolloutFinished => "rollout.finished",
        Ping => "ping",
    }
);

/// The event types a webhook subscribes to, stored as their names joined by
/// commas; a stored name the code does not know fails the read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventTypes(pub Vec<EventType>);

impl EventTypes {
    pub fn contains(&self, kind: EventType) -> bool {
        self.0.contains(&kind)
    }

    /// As stored.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
    }
}

impl TryFrom<String> for EventTypes {
    type Error = UnknownValue;

    fn try_from(text: String) -> Result<Self, UnknownValue> {
        text.split(',')
            .filter(|e| !e.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(EventTypes)
    }
}

text_enum!(
    /// Where one delivery of an event to one webhook stands.
    DeliveryState, "webhook delivery state" {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);
