//! Pure domain logic: the types that are checked once when built (roles, slugs,
//! emails, durations, versions, ranges, CVSS vectors, advisories) and the rules over
//! them (ordering, exposure, canonical documents, CSAF). Nothing here does I/O; the
//! database, HTTP, signing and randomness live elsewhere.

pub mod advisory;
pub mod bundle;
#[cfg(feature = "server")]
pub mod caller;
pub mod csaf;
pub mod cvss;
pub mod cwe;
pub mod device;
pub mod duration;
pub mod email;
#[cfg(feature = "server")]
pub mod event;
pub mod field;
pub mod fleet;
pub mod log;
pub mod merkle;
pub mod network;
pub mod note;
pub mod openpgp;
pub mod password;
pub mod patch;
pub mod policy;
pub mod proof;
pub mod range;
pub mod role;
pub mod rollout;
pub mod schedule;
pub mod slug;
pub mod state;
pub mod text;
pub mod tiles;
pub mod version;
pub mod window;

#[cfg(feature = "server")]
pub use caller::{Caller, Reader, Scope};
pub use duration::parse_duration;
pub use email::Email;
pub use password::NewPassword;
pub use role::Role;
pub use slug::Slug;
pub use state::{
    AdvisoryStatus, AnomalyKind, DeliveryState, EventType, EventTypes, ExposureState, ObservationSource, PatchState,
    PullFailure, ReportState, RolloutAction, RolloutState, Tlp, WaveGate,
};
