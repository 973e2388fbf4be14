//! What the agent checks before it acts on an offer and on a download. Before: the
//! offer is the patch the log holds under the answer's verified head (file hash,
//! signature, size, product, platform, version scheme, rollback flag), is not among
//! the yanked patches that head commits to, does not go back to an older version
//! in the product's scheme unless signed as a rollback, fits `max_patch_bytes`, and
//! was not signed by a key declared compromised before it was logged. After: the
//! minisign signature by a trusted key, the trusted comment against the offer and
//! the device, the size and the sha256 of the bytes. Trusted keys are the pinned
//! ones and those introduced by a rotation statement that a trusted key signed.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use std::collections::HashMap;

use super::state::LearntKey;
use crate::api::device::{Held, KeyResponse, Offer};
use crate::api::log::parse_proof;
use crate::domain::log::{patch_subject, sha256_hex, Entry, LogKind, OfferLog, Revocation, TreeHead};
use crate::domain::merkle::{leaf_hash, verify_inclusion};
use crate::domain::version::VersionScheme;
use crate::signing::{self, PublicKeyInfo};

/// A key the agent trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    pub key_id: String,
    pub text: String,
    /// The key whose rotation statement introduced it; `None` when pinned.
    pub introduced_by: Option<String>,
}

/// The keys the agent trusts, and those a rotation declared compromised.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<TrustedKey>,
    /// Key id → the log size after which nothing it signs counts.
    compromised: HashMap<String, u64>,
}

impl Keyring {
    /// The pinned keys and those learnt earlier.
    pub fn new(pinned: &[String], learnt: &[LearntKey]) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for text in pinned {
            let info = PublicKeyInfo::parse(text)?;
            keys.push(TrustedKey {
                key_id: info.key_id,
                text: info.text,
                introduced_by: None,
            });
        }
        let mut ring = Keyring {
            keys,
            compromised: HashMap::new(),
        };
        for key in learnt {
            if ring.find(&key.key_id).is_none() {
                ring.keys.push(TrustedKey {
                    key_id: key.key_id.clone(),
                    text: key.public_key.clone(),
                    introduced_by: Some(key.introduced_by.clone()),
                });
            }
            if let Some(size) = key.compromised_after {
                ring.distrust(&key.introduced_by, size);
            }
        }
        Ok(ring)
    }

    fn distrust(&mut self, key_id: &str, after: u64) {
        let size = self.compromised.entry(key_id.to_uppercase()).or_insert(after);
        *size = (*size).min(after);
    }

    /// The log size after which a rotation declared `key_id` compromised: what it
    /// signs for a larger log is refused.
    pub fn compromised_after(&self, key_id: &str) -> Option<u64> {
        self.compromised.get(&key_id.to_uppercase()).copied()
    }

    pub fn find(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key_id.eq_ignore_ascii_case(key_id))
    }

    /// The public key text of trusted key `key_id`, to check a signature with.
    pub fn public_key(&self, key_id: &str) -> Option<String> {
        self.find(key_id).map(|k| k.text.clone())
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Accepts each listed key whose rotation statement a trusted key signed, and
    /// then the keys those introduce, and so on. Returns the keys newly trusted.
    ///
    /// Statements that declare a key compromised are taken first, so that a
    /// compromised key introduces no key but the one that replaced it: a statement
    /// its thief signed is not taken.
    pub fn learn(&mut self, listing: &[KeyResponse]) -> Vec<LearntKey> {
        let mut learnt = Vec::new();
        let declares_compromise = |key: &KeyResponse| {
            key.rotation_statement
                .as_deref()
                .and_then(signing::statement_compromised_after)
                .is_some()
        };
        let mut ordered: Vec<&KeyResponse> = listing.iter().filter(|k| declares_compromise(k)).collect();
        ordered.extend(listing.iter().filter(|k| !declares_compromise(k)));
        loop {
            let before = learnt.len();
            for key in &ordered {
                if self.find(&key.key_id).is_some() {
                    continue;
                }
                match self.rotation(key) {
                    Ok(accepted) => {
                        self.keys.push(TrustedKey {
                            key_id: accepted.key_id.clone(),
                            text: accepted.public_key.clone(),
                            introduced_by: Some(accepted.introduced_by.clone()),
                        });
                        if let Some(size) = accepted.compromised_after {
                            self.distrust(&accepted.introduced_by, size);
                        }
                        learnt.push(accepted);
                    }
                    Err(why) => tracing::debug!(key.id = %key.key_id, "key not trusted: {why}"),
                }
            }
            if learnt.len() == before {
                return learnt;
            }
        }
    }

    /// Checks `key`'s rotation statement: signed by a trusted key, with the trusted
    /// comment naming both keys, introducing exactly the key that is listed.
    fn rotation(&self, key: &KeyResponse) -> Result<LearntKey, String> {
        let (Some(statement), Some(signature)) = (&key.rotation_statement, &key.rotation_signature) else {
            return Err("no rotation statement".into());
        };
        let signer = signing::signer_key_id(signature)?;
        let old = self
            .find(&signer)
            .ok_or_else(|| format!("its rotation statement is signed by {signer}, which is not trusted"))?;
        let verified = signing::verify(&old.text, std::io::Cursor::new(statement.as_bytes()), signature)?;
        let listed = PublicKeyInfo::parse(&key.public_key)?;
        let compromised_after = signing::rotation_compromise(&verified.trusted_comment, &old.key_id, &listed.key_id)?;
        if compromised_after.is_none() && self.compromised_after(&old.key_id).is_some() {
            return Err(format!(
                "its rotation statement is signed by {}, which was declared compromised",
                old.key_id
            ));
        }
        let introduced = statement
            .split_once("new public key:\n")
            .map(|(_, text)| text)
            .ok_or("the rotation statement holds no public key")?;
        let introduced = PublicKeyInfo::parse(introduced)?;
        if introduced.key_id != listed.key_id || listed.key_id != key.key_id.to_uppercase() {
            return Err("the rotation statement introduces another key".into());
        }
        Ok(LearntKey {
            key_id: introduced.key_id,
            public_key: introduced.text,
            introduced_by: old.key_id.clone(),
            compromised_after,
        })
    }
}

/// Why a download is refused. The text is what the agent reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Size {
        got: u64,
        offered: u64,
    },
    UntrustedKey(String),
    Signature(String),
    Comment(String),
    Hash {
        got: String,
        offered: String,
    },
    Io(String),
    /// The offer is not the patch the transparency log holds.
    NotLogged(String),
    /// The offer goes back to an older version without being a signed rollback.
    Downgrade {
        running: String,
        offered: String,
    },
    /// A version that the product's scheme does not read, or a patch of another scheme.
    Scheme(String),
    /// The vendor yanked the patch: the head the answer carries commits to it.
    Yanked {
        patch: String,
        index: u64,
        reason: String,
    },
    /// Larger than the agent downloads.
    TooLarge {
        size: u64,
        max: u64,
    },
    /// Signed by a key declared compromised, after the point it was declared so.
    Compromised {
        key_id: String,
        after: u64,
        index: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Size { got, offered } => {
                write!(f, "refused: the download is {got} bytes, the offer says {offered}")
            }
            Refusal::UntrustedKey(id) => write!(
                f,
                "refused: the signature is by key {id}, which is neither pinned nor introduced by a pinned key"
            ),
            Refusal::Signature(why) => write!(f, "refused: the signature does not verify: {why}"),
            Refusal::Comment(why) => write!(f, "refused: the signed trusted comment {why}"),
            Refusal::Hash { got, offered } => {
                write!(f, "refused: the file's sha256 is {got}, the offer says {offered}")
            }
            Refusal::Io(why) => write!(f, "refused: the download could not be read: {why}"),
            Refusal::NotLogged(why) => write!(f, "refused: the patch is not in the transparency log as offered: {why}"),
            Refusal::Downgrade { running, offered } => write!(
                f,
                "refused: the offer goes back from {running} to the older {offered} and is not a signed rollback"
            ),
            Refusal::Scheme(why) => write!(f, "refused: {why}"),
            Refusal::Yanked { patch, index, reason } => write!(
                f,
                "refused: patch {patch} was yanked by the vendor (log entry {index}): {reason}"
            ),
            Refusal::TooLarge { size, max } => write!(
                f,
                "refused: the patch is {size} bytes, more than the {max} this device downloads (max_patch_bytes)"
            ),
            Refusal::Compromised { key_id, after, index } => write!(
                f,
                "refused: the patch is signed by key {key_id}, declared compromised after log size {after}, \
                 and was logged later (entry {index})"
            ),
        }
    }
}

/// What the device expects a patch for it to say of itself.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub product: &'a str,
    pub platform: Option<&'a str>,
    /// The version it runs: an offer of an older one must be a signed rollback.
    pub running: &'a str,
    /// How the product's versions order; patches are signed as of this scheme.
    pub scheme: VersionScheme,
}

/// Whether `offered` is older than `running` in `scheme`; an error names a version
/// the scheme does not read.
pub fn older(scheme: VersionScheme, offered: &str, running: &str) -> Result<bool, Refusal> {
    let read = |version: &str| {
        scheme
            .parse(version)
            .map_err(|e| Refusal::Scheme(format!("`{version}` is not a {scheme} version: {e}")))
    };
    Ok(read(offered)? < read(running)?)
}

/// What the agent verified of the answer that made an offer: its tree head, the
/// yanked patches that head commits to (when the answer carried a list that
/// matches), and the keys trusted.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    pub head: &'a TreeHead,
    pub revoked: Option<&'a [Revocation]>,
    pub keyring: &'a Keyring,
}

/// Checks, before anything is downloaded, that `offer` is what the log holds under
/// the answer's verified head, that the head does not list it as yanked, that it
/// fits `max_bytes`, that it does not take the device back to an older version
/// unless signed as a rollback, and that its signer was not declared compromised
/// before it was logged.
pub fn check_offer(
    verified: Verified<'_>,
    expected: Expected<'_>,
    offer: &Offer,
    max_bytes: u64,
) -> Result<(), Refusal> {
    let head = verified.head;
    if older(expected.scheme, &offer.version, expected.running)? && !offer.rollback {
        return Err(Refusal::Downgrade {
            running: expected.running.to_owned(),
            offered: offer.version.clone(),
        });
    }
    if offer.size > max_bytes {
        return Err(Refusal::TooLarge {
            size: offer.size,
            max: max_bytes,
        });
    }
    let not = |why: String| Refusal::NotLogged(why);
    let log = offer
        .log
        .as_ref()
        .ok_or_else(|| not("the offer names no log entry".into()))?;
    let entry = included(log, head).map_err(not)?;
    if entry.kind != Some(LogKind::PatchPublished) || entry.subject.as_deref() != Some(&patch_subject(&offer.patch_id))
    {
        return Err(not(format!(
            "entry {} is not the publication of patch {}",
            log.index, offer.patch_id
        )));
    }
    let signature_hash = sha256_hex(offer.signature.as_bytes());
    let logged_platform = entry.text("platform");
    let agrees = [
        (
            "sha256",
            entry.text("sha256") == Some(offer.sha256.to_ascii_lowercase().as_str()),
        ),
        (
            "signature",
            entry.text("signature_sha256") == Some(signature_hash.as_str()),
        ),
        ("version", entry.text("version") == Some(offer.version.as_str())),
        ("product", entry.text("product") == Some(expected.product)),
        (
            "size",
            entry.fields.get("size").and_then(serde_json::Value::as_u64) == Some(offer.size),
        ),
        (
            "platform",
            entry.fields.get("platform").is_some()
                && logged_platform.map(str::to_ascii_lowercase)
                    == offer.platform.as_deref().map(str::to_ascii_lowercase),
        ),
        (
            "rollback",
            entry.fields.get("rollback").and_then(serde_json::Value::as_bool) == Some(offer.rollback),
        ),
    ];
    if let Some((what, _)) = agrees.iter().find(|(_, same)| !same) {
        return Err(not(format!("entry {} logs another {what} than the offer's", log.index)));
    }
    if let (Some(logged), Some(mine)) = (logged_platform, expected.platform) {
        if !logged.eq_ignore_ascii_case(mine) {
            return Err(not(format!(
                "entry {} logs a patch for platform {logged}, this device is {mine}",
                log.index
            )));
        }
    }
    match entry.text("version_scheme") {
        Some(scheme) if scheme == expected.scheme.as_str() => {}
        Some(scheme) => {
            return Err(Refusal::Scheme(format!(
                "entry {} logs the patch's versions as {scheme}, this device orders its versions as {}",
                log.index, expected.scheme
            )))
        }
        None => {
            return Err(Refusal::Scheme(format!(
                "entry {} does not say which version scheme orders the patch's versions",
                log.index
            )))
        }
    }
    let revoked = verified
        .revoked
        .ok_or_else(|| not("the answer carries no list of yanked patches that its tree head commits to".into()))?;
    if let Some(yank) = revoked.iter().find(|r| r.patch == offer.patch_id) {
        return Err(Refusal::Yanked {
            patch: yank.patch.clone(),
            index: yank.index,
            reason: yank.reason.clone(),
        });
    }
    let signer = signing::signer_key_id(&offer.signature).map_err(Refusal::Signature)?;
    if let Some(after) = verified.keyring.compromised_after(&signer) {
        if log.index >= after {
            return Err(Refusal::Compromised {
                key_id: signer,
                after,
                index: log.index,
            });
        }
    }
    Ok(())
}

/// The entry `log` names, once its inclusion proof leads to `head`'s root.
fn included(log: &OfferLog, head: &TreeHead) -> Result<Entry, String> {
    if log.tree_size != head.tree_size {
        return Err(format!(
            "its inclusion proof is for a tree of {} entries, the answer's head has {}",
            log.tree_size, head.tree_size
        ));
    }
    let proof = parse_proof(&log.proof)?;
    verify_inclusion(
        log.index,
        head.tree_size,
        &leaf_hash(log.leaf.as_bytes()),
        &proof,
        &head.root_hash,
    )
    .map_err(|e| format!("entry {}: {e}", log.index))?;
    Entry::parse(&log.leaf)
}

/// Checks a claim that a rollout holds back the update: the rollout's entry is in
/// the log under the answer's verified head, is a `rollout.changed` entry of that
/// rollout and patch, and logs the state the answer says. A server that withholds
/// a fix without a rollout saying so, or claims a state the log does not hold, is
/// refused.
pub fn check_held(head: &TreeHead, held: &Held) -> Result<(), String> {
    let log = &held.log;
    let entry = included(log, head)?;
    let subject = format!("rollout/{}", held.rollout);
    let agrees = entry.kind == Some(LogKind::RolloutChanged)
        && entry.subject.as_deref() == Some(subject.as_str())
        && entry.text("patch") == Some(held.patch_id.as_str())
        && entry.text("state") == Some(held.state.as_str());
    if !agrees {
        return Err(format!(
            "entry {} does not log rollout {} of patch {} as {}",
            log.index, held.rollout, held.patch_id, held.state
        ));
    }
    if !held.state.in_force() && held.state != crate::domain::RolloutState::Cancelled {
        return Err(format!("a {} rollout holds nothing back", held.state));
    }
    Ok(())
}

/// Checks the downloaded `file` against `offer`: size, signature by a trusted key,
/// trusted comment (patch id, product, version, platform, sha256), sha256.
pub fn check(keyring: &Keyring, expected: Expected<'_>, offer: &Offer, file: &Path) -> Result<(), Refusal> {
    let io = |e: std::io::Error| Refusal::Io(e.to_string());
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size != offer.size {
        return Err(Refusal::Size {
            got: size,
            offered: offer.size,
        });
    }
    let key_id = signing::signer_key_id(&offer.signature).map_err(Refusal::Signature)?;
    let key = keyring
        .find(&key_id)
        .ok_or_else(|| Refusal::UntrustedKey(key_id.clone()))?;
    let verified = signing::verify(&key.text, std::fs::File::open(file).map_err(io)?, &offer.signature)
        .map_err(Refusal::Signature)?;
    check_comment(&verified.trusted_comment, expected, offer)?;
    let got = sha256_file(file).map_err(io)?;
    if !got.eq_ignore_ascii_case(&offer.sha256) {
        return Err(Refusal::Hash {
            got,
            offered: offer.sha256.clone(),
        });
    }
    Ok(())
}

/// The trusted comment of a patch signature names what the file is; every part of
/// it must agree with the offer and with the device.
fn check_comment(comment: &str, expected: Expected<'_>, offer: &Offer) -> Result<(), Refusal> {
    let fields = comment
        .strip_prefix("patchwarden patch ")
        .ok_or_else(|| Refusal::Comment(format!("`{comment}` is not a patch signature")))?;
    let field = |name: &str| {
        fields
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| Refusal::Comment(format!("`{comment}` has no {name}")))
    };
    let mismatch = |what: &str, signed: &str, offered: &str| {
        Refusal::Comment(format!("says {what} {signed}, but it was offered as {offered}"))
    };
    let product = field("product")?;
    if product != expected.product {
        return Err(mismatch("product", product, expected.product));
    }
    let scheme = field("scheme")?;
    if scheme != expected.scheme.as_str() {
        return Err(mismatch("version scheme", scheme, expected.scheme.as_str()));
    }
    let version = field("version")?;
    if version != offer.version {
        return Err(mismatch("version", version, &offer.version));
    }
    let platform = field("platform")?;
    let offered_platform = offer.platform.as_deref().unwrap_or("any");
    if !platform.eq_ignore_ascii_case(offered_platform) {
        return Err(mismatch("platform", platform, offered_platform));
    }
    if let (false, Some(mine)) = (platform == "any", expected.platform) {
        if !platform.eq_ignore_ascii_case(mine) {
            return Err(mismatch("platform", platform, mine));
        }
    }
    let id = field("id")?;
    if id != offer.patch_id {
        return Err(mismatch("patch", id, &offer.patch_id));
    }
    let sha256 = field("sha256")?;
    if !sha256.eq_ignore_ascii_case(&offer.sha256) {
        return Err(mismatch("sha256", sha256, &offer.sha256));
    }
    let signed_rollback = fields.split_whitespace().any(|f| f == "rollback=yes");
    if older(expected.scheme, &offer.version, expected.running)? && !signed_rollback {
        return Err(Refusal::Downgrade {
            running: expected.running.to_owned(),
            offered: offer.version.clone(),
        });
    }
    Ok(())
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{rotate, Signer};

    fn listing(key: &PublicKeyInfo, statement: Option<(&str, &str)>) -> KeyResponse {
        KeyResponse {
            key_id: key.key_id.clone(),
            public_key: key.text.clone(),
            created_at: chrono::Utc::now(),
            retired_at: None,
            introduced_by: None,
            rotation_statement: statement.map(|s| s.0.to_owned()),
            rotation_signature: statement.map(|s| s.1.to_owned()),
        }
    }

    #[test]
    fn a_rotation_signed_by_a_pinned_key_adds_the_new_key_and_chains() {
        let dir = tempfile::tempdir().unwrap();
        let first = Signer::generate(dir.path(), None).unwrap().public_key().clone();
        let (second, r1) = rotate(dir.path(), None, None, "2026-11-28T00:00:00Z", None).unwrap();
        let (third, r2) = rotate(dir.path(), None, None, "2026-11-29T00:00:00Z", None).unwrap();
        let keys = [
            listing(third.public_key(), Some((&r2.statement, &r2.signature))),
            listing(second.public_key(), Some((&r1.statement, &r1.signature))),
            listing(&first, None),
        ];
        let mut ring = Keyring::new(std::slice::from_ref(&first.text), &[]).unwrap();
        let learnt = ring.learn(&keys);
        let ids: Vec<_> = learnt.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, [second.key_id(), third.key_id()]);
        assert_eq!(learnt[1].introduced_by, second.key_id());
        assert!(ring.find(third.key_id()).is_some());

        // Pinned to an unrelated key, none of them is trusted.
        let other = Signer::generate(&dir.path().join("other"), None).unwrap();
        let mut stranger = Keyring::new(&[other.public_key().text.clone()], &[]).unwrap();
        assert!(stranger.learn(&keys).is_empty());

        // A statement moved onto another listed key does not introduce it.
        let swapped = [listing(third.public_key(), Some((&r1.statement, &r1.signature)))];
        let mut ring = Keyring::new(std::slice::from_ref(&first.text), &[]).unwrap();
        assert!(ring.learn(&swapped).is_empty());
    }

    #[test]
    fn the_trusted_comment_must_agree_with_offer_and_device() {
        let offer = Offer {
            patch_id: "pat_1".into(),
            version: "6.3.0r21".into(),
            platform: Some("ssg-500".into()),
            filename: "f.bin".into(),
            download_url: "/d".into(),
            sha256: "ab".repeat(32),
            size: 1,
            signature: String::new(),
            advisories: vec![],
            emergency: true,
            rollback: false,
            log: None,
            rollout: None,
            install_after: None,
            install: crate::domain::device::Install::Now,
        };
        let me = Expected {
            product: "screenos",
            platform: Some("ssg-500"),
            running: "6.3.0r20",
            scheme: VersionScheme::Vendor,
        };
        let good = format!(
            "patchwarden patch id=pat_1 product=screenos version=6.3.0r21 scheme=vendor platform=ssg-500 sha256={} advisories=PW-1",
            "ab".repeat(32)
        );
        assert_eq!(check_comment(&good, me, &offer), Ok(()));
        for (from, to, names) in [
            ("product=screenos", "product=junos", "product junos"),
            ("version=6.3.0r21", "version=6.3.0r19", "version 6.3.0r19"),
            ("platform=ssg-500", "platform=ssg-20", "platform ssg-20"),
            ("id=pat_1", "id=pat_2", "patch pat_2"),
            ("scheme=vendor", "scheme=semver", "version scheme semver"),
            ("scheme=vendor ", "", "has no scheme"),
        ] {
            let err = check_comment(&good.replace(from, to), me, &offer).unwrap_err();
            assert!(err.to_string().contains(names), "{err}");
        }
        let err = check_comment("patchwarden-key-rotation old=A new=B", me, &offer).unwrap_err();
        assert!(err.to_string().contains("not a patch signature"), "{err}");

        // Going back from a newer version takes a signature that says rollback.
        let newer = Expected {
            running: "6.3.0r22",
            ..me
        };
        let err = check_comment(&good, newer, &offer).unwrap_err();
        assert!(matches!(err, Refusal::Downgrade { .. }), "{err}");
        assert_eq!(check_comment(&format!("{good} rollback=yes"), newer, &offer), Ok(()));
    }

    #[test]
    fn versions_compare_in_the_scheme_the_device_names() {
        let vendor = VersionScheme::Vendor;
        let semver = VersionScheme::Semver;
        assert_eq!(older(vendor, "6.3.0r19", "6.3.0r21"), Ok(true));
        assert_eq!(older(vendor, "6.3.0r21", "6.3.0r21"), Ok(false));
        assert_eq!(older(vendor, "21.4R3-S4", "21.4R3-S5"), Ok(true));
        assert_eq!(older(semver, "1.2.3", "1.10.0"), Ok(true));
        // A pre-release comes before its release in semver, whatever another scheme says.
        assert_eq!(older(semver, "2.0.0-rc.1", "2.0.0"), Ok(true));
        assert!(matches!(older(semver, "6.3.0r21", "6.3.0r20"), Err(Refusal::Scheme(_))));
        assert!(matches!(
            older(vendor, "not a version", "1.0.0"),
            Err(Refusal::Scheme(_))
        ));
    }

    #[test]
    fn a_compromise_statement_distrusts_the_old_key_and_stops_it_introducing_others() {
        let dir = tempfile::tempdir().unwrap();
        let first = Signer::generate(dir.path(), None).unwrap();
        let first_public = first.public_key().clone();
        // The thief of the first key introduces a key of its own.
        let thief_dir = tempfile::tempdir().unwrap();
        let thief = Signer::generate(thief_dir.path(), None).unwrap();
        let forged_statement =
            crate::signing::rotation_statement(first.key_id(), thief.public_key(), "2026-11-30", None);
        let forged_signature = first
            .sign(
                forged_statement.as_bytes(),
                &crate::signing::rotation_comment(first.key_id(), thief.key_id(), None),
            )
            .unwrap();
        // The vendor rotates away from it, declaring it compromised after 40 entries.
        let (second, leak) = rotate(dir.path(), None, None, "2026-12-01T00:00:00Z", Some(40)).unwrap();
        let keys = [
            listing(thief.public_key(), Some((&forged_statement, &forged_signature))),
            listing(second.public_key(), Some((&leak.statement, &leak.signature))),
            listing(&first_public, None),
        ];
        let mut ring = Keyring::new(std::slice::from_ref(&first_public.text), &[]).unwrap();
        let learnt = ring.learn(&keys);
        let ids: Vec<_> = learnt.iter().map(|k| k.key_id.as_str()).collect();
        assert_eq!(ids, [second.key_id()], "the thief's key is not taken");
        assert_eq!(ring.compromised_after(first.key_id()), Some(40));
        assert_eq!(ring.compromised_after(second.key_id()), None);
        // What was learnt survives a restart.
        let again = Keyring::new(std::slice::from_ref(&first_public.text), &learnt).unwrap();
        assert_eq!(again.compromised_after(first.key_id()), Some(40));
    }
}
