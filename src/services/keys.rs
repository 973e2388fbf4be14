//! The signing-key registry: which key signs, and how the database learns of it.
//!
//! The key on disk and the key the database calls active must agree. A key that the
//! database has not seen becomes active only when a chain of rotation statements,
//! each signed by its predecessor, leads back to the active one; otherwise the
//! server refuses to start rather than sign with a stranger's key (a keys volume
//! that was not mounted, a second instance without the files). A development key is
//! created only for a database that has never known a key.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::db::models::{now, sealing, SigningKeyRecord};
use crate::db::{Db, DbConnection};
use crate::domain::event::{Actor, Event};
use crate::domain::openpgp::{self, OpenPgpKey};
use crate::secrets::SealingKey;
use crate::services::log;
use crate::services::{ServiceError, Services};
use crate::signing::{self, PublicKeyInfo, Signer};

/// How many rotations one start may catch up on.
const MAX_CHAIN: usize = 32;

/// Loads the configured key (or, for a database that never knew one, creates a
/// development key), checks it against the database and records it as active.
pub fn open_signer(config: &Config, db: &Db) -> anyhow::Result<Signer> {
    let mut conn = db.conn().context("taking a database connection")?;
    let known = SigningKeyRecord::list(&mut conn)?;
    let active = known.iter().find(|k| k.retired_at.is_none());
    let keys_dir = &config.keys_dir;
    let signer = if Signer::exists(keys_dir) {
        let password = config.key_password.as_ref().map(|p| p.expose().to_owned());
        Signer::load(keys_dir, password).context("loading the signing key (setting keys_dir)")?
    } else if let Some(active) = active {
        bail!(
            "keys_dir {} holds no signing key, but the database's active key is {}; refusing to create \
             another one (mount or point keys_dir at that key's directory)",
            keys_dir.display(),
            active.key_id
        );
    } else if let Some(last) = known.last() {
        bail!(
            "keys_dir {} holds no signing key, and the database knows key {} already; restore keys_dir",
            keys_dir.display(),
            last.key_id
        );
    } else {
        create_development_key(keys_dir)?
    };
    if let Some(active) = active {
        if active.key_id != signer.key_id() {
            check_rotation_chain(keys_dir, &known, &active.key_id, signer.key_id())?;
        }
    }
    register_keys(&mut conn, &signer, keys_dir)?;
    Ok(signer)
}

/// Opens the key that seals pull tokens and webhook secrets at rest, and holds it to
/// the check value the database stores: the server refuses to start with a key that
/// is not the one the stored values were sealed with (a lost, replaced or unshared
/// key file). A key is created only for a database that holds nothing sealed.
pub fn open_sealing(path: &Path, conn: &mut DbConnection) -> anyhow::Result<SealingKey> {
    let stored = sealing::check(conn)?;
    let key = match (&stored, path.exists()) {
        (_, true) => SealingKey::read(path)?,
        (Some(_), false) => bail!(
            "secrets_key_file {} does not exist, but the database holds values sealed with a key; refusing to \
             create another (it could open none of them): restore that key file, shared by every instance",
            path.display()
        ),
        (None, false) => {
            if sealing::holds_sealed_values(conn)? {
                bail!(
                    "secrets_key_file {} does not exist, but the database holds sealed pull tokens or webhook \
                     secrets; refusing to create another key (it could open none of them): restore that key file",
                    path.display()
                );
            }
            SealingKey::create(path)?
        }
    };
    let check = match stored {
        Some(check) => check,
        None => sealing::set_check(conn, &key.check_value(), now())?,
    };
    if !key.opens_check(&check) {
        bail!(
            "the secrets key {} is not the one the database's sealed values were made with; start with that \
             key file (every instance shares one)",
            path.display()
        );
    }
    Ok(key)
}

fn create_development_key(keys_dir: &Path) -> anyhow::Result<Signer> {
    let signer = Signer::generate(keys_dir, None).context("creating a development signing key")?;
    tracing::warn!(
        key.id = signer.key_id(),
        keys_dir = %keys_dir.display(),
        "NO SIGNING KEY WAS CONFIGURED: created an UNENCRYPTED development key for this new database. \
         Do not publish with it; run `patchwarden keygen` for a password-protected key."
    );
    Ok(signer)
}

/// A rotation statement found beside the keys: the key it introduces, the key that
/// signed it, the text and its signature.
struct Statement {
    old_key_id: String,
    text: String,
    signature: String,
}

fn read_statement(keys_dir: &Path, key_id: &str) -> anyhow::Result<Option<Statement>> {
    let path = keys_dir.join(format!("rotation-{key_id}.txt"));
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let signature_path = keys_dir.join(format!("rotation-{key_id}.txt.minisig"));
    let signature =
        std::fs::read_to_string(&signature_path).with_context(|| format!("reading {}", signature_path.display()))?;
    let old_key_id = text
        .lines()
        .find_map(|l| l.strip_prefix("old key: "))
        .map(str::to_owned)
        .with_context(|| format!("{} names no old key", path.display()))?;
    let names_new = text.lines().any(|l| l.strip_prefix("new key: ") == Some(key_id));
    if !names_new {
        bail!("{} does not introduce key {key_id}", path.display());
    }
    Ok(Some(Statement {
        old_key_id,
        text,
        signature,
    }))
}

/// The public key of `key_id`: from the database, or from `keys_dir/retired`.
fn public_key_of(keys_dir: &Path, known: &[SigningKeyRecord], key_id: &str) -> anyhow::Result<Option<String>> {
    if let Some(record) = known.iter().find(|k| k.key_id == key_id) {
        return Ok(Some(record.public_key.clone()));
    }
    let path = keys_dir.join("retired").join(format!("{key_id}.pub"));
    if path.is_file() {
        return Ok(Some(
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        ));
    }
    Ok(None)
}

/// Follows rotation statements from `loaded` back to `active`, checking each one's
/// signature with the key it names as its signer.
fn check_rotation_chain(keys_dir: &Path, known: &[SigningKeyRecord], active: &str, loaded: &str) -> anyhow::Result<()> {
    let refuse = |why: String| {
        anyhow::anyhow!(
            "the signing key in {} is {loaded}, but the database's active key is {active} and {why}; \
             refusing to start (point keys_dir at key {active}, or rotate with `patchwarden keygen --rotate`)",
            keys_dir.display()
        )
    };
    let mut current = loaded.to_owned();
    for _ in 0..MAX_CHAIN {
        let Some(statement) = read_statement(keys_dir, &current)? else {
            return Err(refuse(format!("no rotation statement introduces {current}")));
        };
        let Some(public) = public_key_of(keys_dir, known, &statement.old_key_id)? else {
            return Err(refuse(format!(
                "the public key of {}, which signed the statement for {current}, is unknown",
                statement.old_key_id
            )));
        };
        let verified = signing::verify(&public, Cursor::new(statement.text.as_bytes()), &statement.signature)
            .map_err(|e| refuse(format!("the rotation statement for {current} does not verify: {e}")))?;
        if verified.key_id != statement.old_key_id {
            return Err(refuse(format!(
                "the rotation statement for {current} is signed by {}, not by {}",
                verified.key_id, statement.old_key_id
            )));
        }
        if statement.old_key_id == active {
            return Ok(());
        }
        current = statement.old_key_id;
    }
    Err(refuse(format!("the rotation chain is longer than {MAX_CHAIN} keys")))
}

/// Records the active key in the database, with the rotation statement that
/// introduced it when one sits beside it, and any retired keys found in
/// `keys_dir/retired` that the database does not know yet.
fn register_keys(conn: &mut DbConnection, signer: &Signer, keys_dir: &Path) -> anyhow::Result<()> {
    let at = now();
    let retired = keys_dir.join("retired");
    if retired.is_dir() {
        for entry in std::fs::read_dir(&retired).with_context(|| format!("reading {}", retired.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pub") {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let info = PublicKeyInfo::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if SigningKeyRecord::find(conn, &info.key_id)?.is_none() {
                    // The public key file was written when the key was made; a rename keeps that time.
                    let made = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .with_context(|| format!("reading the time of {}", path.display()))?;
                    let created = chrono::DateTime::<chrono::Utc>::from(made).naive_utc();
                    crate::db::models::signing_key::insert(conn, &record(&info, created, Some(at), None))?;
                }
            }
        }
    }
    let rotation = read_statement(keys_dir, signer.key_id())?.map(|s| (s.old_key_id, s.text, s.signature));
    conn.write_transaction(|conn| {
        let before = SigningKeyRecord::list(conn)?;
        SigningKeyRecord::activate(conn, &record(signer.public_key(), at, None, rotation), at)?;
        for key in SigningKeyRecord::list(conn)? {
            let was = before.iter().find(|k| k.key_id == key.key_id);
            if was.is_none() {
                log_key(conn, &log::records::key_introduced(&key), &key)?;
            }
            if key.retired_at.is_some() && was.is_none_or(|w| w.retired_at.is_none()) {
                log_key(conn, &log::records::key_retired(&key), &key)?;
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// Logs that `key` was introduced or retired (`event`).
fn log_key(conn: &mut DbConnection, event: &Event, key: &SigningKeyRecord) -> anyhow::Result<()> {
    log::append(conn, event, &Actor::Server).map_err(|e| anyhow::anyhow!("logging key {}: {e}", key.key_id))?;
    Ok(())
}

fn record(
    info: &PublicKeyInfo,
    created_at: chrono::NaiveDateTime,
    retired_at: Option<chrono::NaiveDateTime>,
    rotation: Option<(String, String, String)>,
) -> SigningKeyRecord {
    let (introduced_by, statement, statement_signature) = match rotation {
        Some((old, statement, signature)) => (Some(old), Some(statement), Some(signature)),
        None => (None, None, None),
    };
    SigningKeyRecord {
        key_id: info.key_id.clone(),
        public_key: info.text.clone(),
        created_at,
        retired_at,
        introduced_by,
        statement,
        statement_signature,
        openpgp_key: None,
    }
}

/// The user ID of the OpenPGP key: the vendor, and the security contact's address.
fn openpgp_user_id(config: &Config) -> String {
    let contact = config.security_contact();
    match contact.strip_prefix("mailto:") {
        Some(address) => format!("{} CSAF signing key <{address}>", config.vendor_name),
        None => format!("{} CSAF signing key ({contact})", config.vendor_name),
    }
}

/// The OpenPGP key that signs CSAF documents: derived from the active signing key's
/// seed (so the one protected key file, and its rotation, covers it) and dated when
/// the database first knew that key. Its public key is stored with the key, where a
/// retired one stays to verify what it signed.
pub fn open_openpgp(config: &Config, db: &Db, signer: &Signer) -> anyhow::Result<OpenPgpKey> {
    let mut conn = db.conn().context("taking a database connection")?;
    let record = SigningKeyRecord::find(&mut conn, signer.key_id())?
        .with_context(|| format!("the active key {} is not registered", signer.key_id()))?;
    let created = u32::try_from(record.created_at.and_utc().timestamp())
        .context("the signing key's creation time is outside OpenPGP's range")?;
    let (seed, _) = signer.ed25519_pair()?;
    let key = OpenPgpKey::from_seed(&openpgp::derive_seed(&seed), created, &openpgp_user_id(config))
        .map_err(|e| anyhow::anyhow!("the OpenPGP key: {e}"))?;
    let armored = key.public_key_armored();
    if record.openpgp_key.as_deref() != Some(armored.as_str()) {
        crate::db::models::signing_key::set_openpgp_key(&mut conn, signer.key_id(), &armored)?;
    }
    Ok(key)
}

/// Every signing key the database knows, oldest first, with its validity and the
/// rotation statement that introduced it.
pub async fn list(services: &Services) -> Result<Vec<SigningKeyRecord>, ServiceError> {
    Ok(services.db.query(SigningKeyRecord::list).await?)
}

/// One public key by its id.
pub async fn find(services: &Services, key_id: String) -> Result<SigningKeyRecord, ServiceError> {
    services
        .db
        .query(move |conn| SigningKeyRecord::find(conn, &key_id))
        .await?
        .ok_or(ServiceError::NotFound("key"))
}
