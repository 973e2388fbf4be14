//! Public signing keys, current and retired, with the rotation statements that
//! introduced them. Secret keys never enter the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::signing_keys;
use crate::db::DbConnection;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRecord {
    pub key_id: String,
    pub public_key: String,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub introduced_by: Option<String>,
    pub statement: Option<String>,
    pub statement_signature: Option<String>,
    /// The armored OpenPGP public key that belongs to this key (CSAF documents).
    pub openpgp_key: Option<String>,
}

impl SigningKeyRecord {
    /// All keys, oldest first.
    pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRecord>> {
        signing_keys::table
            .order(signing_keys::created_at)
            .select(SigningKeyRecord::as_select())
            .load(conn)
    }

    pub fn find(conn: &mut DbConnection, key_id: &str) -> QueryResult<Option<SigningKeyRecord>> {
        signing_keys::table
            .find(key_id)
            .select(SigningKeyRecord::as_select())
            .first(conn)
            .optional()
    }

    /// Records `record` as the active key (unless it is known) and retires every
    /// other active key at `at`.
    pub fn activate(conn: &mut DbConnection, record: &SigningKeyRecord, at: NaiveDateTime) -> QueryResult<()> {
        conn.write_transaction(|conn| {
            if Self::find(conn, &record.key_id)?.is_none() {
                diesel::insert_into(signing_keys::table).values(record).execute(conn)?;
            }
            diesel::update(
                signing_keys::table
                    .filter(signing_keys::key_id.ne(&record.key_id))
                    .filter(signing_keys::retired_at.is_null()),
            )
            .set(signing_keys::retired_at.eq(at))
            .execute(conn)?;
            Ok(())
        })
    }
}

/// Stores the OpenPGP public key of `key_id`.
pub fn set_openpgp_key(conn: &mut DbConnection, key_id: &str, armored: &str) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(key_id))
        .set(signing_keys::openpgp_key.eq(armored))
        .execute(conn)
        .map(drop)
}

impl From<SigningKeyRecord> for crate::signing::KeyResponse {
    fn from(k: SigningKeyRecord) -> Self {
        crate::signing::KeyResponse {
            key_id: k.key_id,
            public_key: k.public_key,
            created_at: k.created_at.and_utc(),
            retired_at: k.retired_at.map(|at| at.and_utc()),
            introduced_by: k.introduced_by,
            rotation_statement: k.statement,
            rotation_signature: k.statement_signature,
        }
    }
}

/// Inserts a key row as it is.
pub fn insert(conn: &mut DbConnection, record: &SigningKeyRecord) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(record)
        .execute(conn)
        .map(drop)
}
