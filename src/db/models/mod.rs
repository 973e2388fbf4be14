//! Rows and the queries over them, one file per table. Functions take a connection
//! and return diesel's `QueryResult`; deciding what a result means for the caller
//! (404, 409) is the job of the layer above.

/// Runs one multi-row statement on whichever backend `conn` is: diesel builds a
/// multi-row insert for a concrete connection, not for the connection enum.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// Rows per multi-row insert: well under either backend's limit of bound values.
const ROWS_PER_INSERT: usize = 1000;

/// Fewer rows than this go to PostgreSQL as an `INSERT`: `COPY` costs a round trip
/// more and a bulk-load setup that pays off only over many rows, and a single row's
/// `INSERT` is a statement the connection keeps prepared (an event's log entry, an
/// enrolment).
pub(crate) const ROWS_PER_COPY: usize = 64;

/// Inserts `rows` (a slice of insertable rows) into `table`: in bulk, one `COPY` on
/// PostgreSQL (its bulk path: no statement to parse per thousand rows, and row
/// triggers still fire), a thousand rows per statement on SQLite; a single row as
/// a prepared single-row `INSERT` on either.
macro_rules! insert_many {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let rows = $rows;
        match $conn {
            _ if rows.is_empty() => {}
            conn if rows.len() == 1 => {
                on_backend!(conn, |c| diesel::insert_into($table).values(&rows[0]).execute(c))?;
            }
            $crate::db::DbConnection::Postgres(c) if rows.len() < $crate::db::models::ROWS_PER_COPY => {
                diesel::insert_into($table).values(rows).execute(c)?;
            }
            $crate::db::DbConnection::Postgres(c) => {
                diesel::copy_from($table).from_insertable(rows).execute(c)?;
            }
            $crate::db::DbConnection::Sqlite(c) => {
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    diesel::insert_into($table).values(chunk).execute(c)?;
                }
            }
        }
    }};
}

pub mod advisory;
pub mod anomaly;
pub mod api_token;
pub mod customer;
pub mod device;
pub mod enrollment;
pub mod exposure;
pub mod image;
pub mod log;
pub mod observation;
pub mod patch;
pub mod product;
pub mod pull;
pub mod report;
pub mod rollout;
pub mod sealing;
pub mod session;
pub mod signing_key;
pub mod upload;
pub mod user;
pub mod webhook;
pub mod window;

pub use advisory::{AdvisoryFilter, AdvisoryRecord, NewAdvisory, PublishedSummary, RevisionRecord};
pub use anomaly::{AnomalyRecord, ListedAnomaly};
pub use api_token::{ApiToken, NewApiToken};
pub use customer::{Customer, NewCustomer};
pub use device::{DeviceFilter, DeviceOrder, DeviceRecord, Generations, NamedDevice};
pub use enrollment::EnrollmentToken;
pub use image::ReleaseImage;
pub use observation::{Latest, ObservationRecord, Offers, Seen};
pub use patch::{NewPatch, PatchRecord, PatchView};
pub use product::{NewProduct, Product};
pub use pull::{Claimed, DevicePull, PullDone, PullFailureRecord, PullTarget};
pub use report::ReportRecord;
pub use session::{NewSession, Session};
pub use signing_key::SigningKeyRecord;
pub use upload::PatchUpload;
pub use user::{NewUser, User};
pub use webhook::{Attempt, ClaimedDelivery, DeliveryRecord, EventRecord, LoggedDelivery, WebhookRecord};

/// A stored UTC timestamp as an RFC 3339 value.
pub fn utc(at: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    at.and_utc()
}

/// The current time as stored: UTC, microsecond precision on both backends.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}
