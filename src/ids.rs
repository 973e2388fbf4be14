//! Identifier newtypes. Each is a UUIDv7 stored as text on both backends, so an id
//! of one kind cannot be passed where another is expected, and ids sort by creation.

use std::fmt;
use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's sixteen bytes, for tables that hold many of them.
            pub fn to_bytes(&self) -> Option<[u8; 16]> {
                uuid::Uuid::try_parse(&self.0).ok().map(uuid::Uuid::into_bytes)
            }

            /// The id of `bytes` (from [`Self::to_bytes`]).
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(uuid::Uuid::from_bytes(bytes).to_string())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                uuid::Uuid::try_parse(s)
                    .map(|id| Self(id.to_string()))
                    .map_err(|_| format!("`{s}` is not an id"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Stored as text on any backend that stores text.
        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            String: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <String as ToSql<Text, DB>>::to_sql(&self.0, out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                <String as FromSql<Text, DB>>::from_sql(bytes).map(Self)
            }
        }
    };
}

id_type!(
    /// A customer (tenant).
    CustomerId
);
id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// An API token.
    TokenId
);
id_type!(
    /// A product.
    ProductId
);
id_type!(
    /// An advisory, draft or published; published ones also have a public id.
    AdvisoryId
);
id_type!(
    /// A patch.
    PatchId
);
id_type!(
    /// A device of a customer's fleet.
    DeviceId
);
id_type!(
    /// A token with which devices enrol themselves.
    EnrollmentTokenId
);
id_type!(
    /// One install report of a device.
    ReportId
);
id_type!(
    /// One row of a device's observation history.
    ObservationId
);

id_type!(
    /// A registered release image hash.
    ReleaseImageId
);
id_type!(
    /// An anomaly flag.
    AnomalyId
);
id_type!(
    /// A rollout of a patch.
    RolloutId
);
id_type!(
    /// One line of a rollout's history.
    RolloutStepId
);
id_type!(
    /// A webhook subscription.
    WebhookId
);
id_type!(
    /// One delivery of an event to one webhook.
    DeliveryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_uuids() {
        let id = UserId::generate();
        assert_eq!(id.as_str().parse::<UserId>(), Ok(id.clone()));
        assert!("../../etc/passwd".parse::<UserId>().is_err());
        assert!("".parse::<UserId>().is_err());
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = TokenId::generate();
        let second = TokenId::generate();
        assert!(first < second);
    }
}
