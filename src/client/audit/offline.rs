//! Checking an evidence bundle offline, with the vendor's public key alone: every
//! signature, inclusion proof, sealed entry's opening and device claim in it, each
//! failure named by the part it is in.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::device::KeyResponse;
use crate::api::log::{parse_proof, SignedHead};
use crate::domain::bundle::{self, SIGNATURE_PART};
use crate::domain::log::{commitment, sha256_hex, Entry, LogKind, TreeHead};
use crate::domain::merkle::{leaf_hash, verify_inclusion};
use crate::domain::note::{Note, VerifierKey};
use crate::domain::policy::Policy;
use crate::domain::proof::{check_patch_proof, TlogProof, PROOF_EXTENSION};
use crate::services::evidence::{
    bundle_comment, BundleOpening, DeviceFacts, Manifest, PatchFacts, ProvenEntry, CHECKPOINT_PART, NOTE_KEY_PART,
};
use crate::signing;

use super::keyring;

/// What an evidence bundle shows, once verified.
#[derive(Clone, Debug)]
pub struct BundleReport {
    pub manifest: Manifest,
    pub head: TreeHead,
    pub entries: usize,
    pub devices: Vec<DeviceFacts>,
    /// The head as a signed note with its cosignatures, when the bundle has it.
    pub checkpoint: Option<Note>,
    /// The patches that carry their offline proof.
    pub proofs: usize,
}

/// Verifies an evidence bundle with the vendor's public key alone. Every failure
/// names the part it is in. With `witnesses`, the bundle's checkpoint and every
/// patch's proof must carry the policy's quorum of cosignatures (of any age: the
/// bundle shows what was witnessed then).
pub fn verify_bundle(bytes: &[u8], public_key: &str, witnesses: Option<&Policy>) -> Result<BundleReport, String> {
    let parsed = bundle::parse(bytes)?;
    let named = |name: &str| -> Result<(usize, &[u8]), String> {
        parsed
            .get(name)
            .map(|(n, p)| (n, p.bytes.as_slice()))
            .ok_or_else(|| format!("the bundle has no part {name}"))
    };
    let fail = |number: usize, name: &str, why: String| format!("part {number} ({name}): {why}");
    fn read<T: serde::de::DeserializeOwned>(number: usize, name: &str, bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("part {number} ({name}): not what it should hold: {e}"))
    }
    // Names first: a part whose name is not one a bundle has, or (below) not one
    // its manifest lists, is named by its number before anything is looked up.
    let lowercase = |name: &str| {
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'/' | b'_' | b'-'))
    };
    for (i, part) in parsed.parts.iter().enumerate() {
        let name = part.name.as_str();
        let revision = |stem: &str| {
            stem.strip_prefix("advisory/r")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        };
        let known = matches!(
            name,
            "manifest.json" | "keys.json" | "log/head.json" | "log/entries.json" | "log/openings.json" | "devices.json"
        ) || name == SIGNATURE_PART
            || name == CHECKPOINT_PART
            || name == NOTE_KEY_PART
            || name.strip_suffix(".json.minisig").is_some_and(revision)
            || name.strip_suffix(".json").is_some_and(revision)
            || (name.starts_with("patches/")
                && (name.ends_with(".json") || name.ends_with(".minisig") || name.ends_with(PROOF_EXTENSION)));
        if !known || !lowercase(name) {
            return Err(fail(i + 1, name, "is not a part an evidence bundle has".into()));
        }
    }
    let (n, bytes) = named("manifest.json")?;
    let manifest: Manifest = read(n, "manifest.json", bytes)?;
    let mut listed: BTreeSet<String> = [
        "manifest.json",
        "keys.json",
        "log/head.json",
        "log/entries.json",
        "log/openings.json",
        "devices.json",
        CHECKPOINT_PART,
        NOTE_KEY_PART,
        SIGNATURE_PART,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for revision in &manifest.revisions {
        listed.insert(format!("advisory/r{revision}.json"));
        listed.insert(format!("advisory/r{revision}.json.minisig"));
    }
    for id in &manifest.patches {
        listed.insert(format!("patches/{id}.json"));
        listed.insert(format!("patches/{id}.minisig"));
        listed.insert(format!("patches/{id}.{PROOF_EXTENSION}"));
    }
    for (i, part) in parsed.parts.iter().enumerate() {
        if !listed.contains(&part.name) {
            return Err(fail(
                i + 1,
                &part.name,
                "is not a part the bundle's manifest lists".into(),
            ));
        }
    }
    let (n, bytes) = named("keys.json")?;
    let listing: Vec<KeyResponse> = read(n, "keys.json", bytes)?;
    let ring = keyring(public_key, &listing).map_err(|e| fail(n, "keys.json", e.to_string()))?;
    let trusted = |id: &str| ring.public_key(id);

    let (n, bytes) = named("log/head.json")?;
    let signed: SignedHead = read(n, "log/head.json", bytes)?;
    let head = signed.verify(trusted).map_err(|e| fail(n, "log/head.json", e))?;
    let quorum = |note: &Note| match witnesses {
        Some(policy) => policy.check_note(note, chrono::Utc::now().timestamp().max(0) as u64, u64::MAX),
        None => Ok(()),
    };
    let checkpoint = match parsed.get(CHECKPOINT_PART) {
        None if witnesses.is_some() => {
            return Err(format!(
                "the bundle has no part {CHECKPOINT_PART}, so no witness cosigned its head"
            ))
        }
        None => None,
        Some((cn, part)) => {
            let bad = |why: String| fail(cn, CHECKPOINT_PART, why);
            let text = std::str::from_utf8(&part.bytes).map_err(|_| bad("not text".into()))?;
            let note = Note::parse(text).map_err(bad)?;
            if note.text != signed.checkpoint {
                return Err(bad("it is not the checkpoint of log/head.json".into()));
            }
            let key = trusted(&signed.key_id).ok_or_else(|| bad("its key is not trusted".into()))?;
            let note_key = crate::domain::log::note_key(&head.origin, &key).map_err(bad)?;
            if note.verified_by(&note_key).is_none() {
                return Err(bad("it carries no note signature of the log's key".into()));
            }
            let (kn, published) = named(NOTE_KEY_PART)?;
            let published = std::str::from_utf8(published)
                .ok()
                .and_then(|text| text.strip_suffix('\n'))
                .map(VerifierKey::parse);
            if published != Some(Ok(note_key)) {
                return Err(fail(
                    kn,
                    NOTE_KEY_PART,
                    "it is not the log's key under the log's origin".into(),
                ));
            }
            quorum(&note).map_err(bad)?;
            Some(note)
        }
    };

    let (n, bytes) = named("log/entries.json")?;
    let proven: Vec<ProvenEntry> = read(n, "log/entries.json", bytes)?;
    let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
    for entry in &proven {
        let proof = parse_proof(&entry.proof).map_err(|e| fail(n, "log/entries.json", e))?;
        verify_inclusion(
            entry.index,
            head.tree_size,
            &leaf_hash(entry.leaf.as_bytes()),
            &proof,
            &head.root_hash,
        )
        .map_err(|e| fail(n, "log/entries.json", format!("entry {}: {e}", entry.index)))?;
        let parsed_entry = Entry::parse(&entry.leaf)
            .map_err(|e| fail(n, "log/entries.json", format!("entry {}: {e}", entry.index)))?;
        entries.insert(entry.index, parsed_entry);
    }
    let find = |subject: &str, kind: LogKind| {
        entries
            .iter()
            .rev()
            .find(|(_, e)| e.kind == Some(kind) && e.subject.as_deref() == Some(subject))
    };

    for revision in &manifest.revisions {
        let doc_name = format!("advisory/r{revision}.json");
        let sig_name = format!("advisory/r{revision}.json.minisig");
        let (dn, document) = named(&doc_name)?;
        let (sn, signature) = named(&sig_name)?;
        let signature = std::str::from_utf8(signature).map_err(|_| fail(sn, &sig_name, "not text".into()))?;
        let signer = signing::signer_key_id(signature).map_err(|e| fail(sn, &sig_name, e))?;
        let key = trusted(&signer)
            .ok_or_else(|| fail(sn, &sig_name, format!("signed by key {signer}, which is not trusted")))?;
        let verified = signing::verify(&key, std::io::Cursor::new(document), signature)
            .map_err(|e| fail(dn, &doc_name, format!("its signature does not verify: {e}")))?;
        let subject = crate::domain::log::advisory_subject(&manifest.advisory, *revision);
        let logged = [
            LogKind::AdvisoryPublished,
            LogKind::AdvisoryRevised,
            LogKind::AdvisoryWithdrawn,
        ]
        .into_iter()
        .find_map(|k| find(&subject, k))
        .ok_or_else(|| fail(dn, &doc_name, format!("no log entry records {subject}")))?;
        if logged.1.text("sha256") != Some(sha256_hex(document).as_str()) {
            return Err(fail(
                dn,
                &doc_name,
                format!("it is not the document logged in entry {}", logged.0),
            ));
        }
        if logged.1.text("signature_sha256") != Some(sha256_hex(signature.as_bytes()).as_str()) {
            return Err(fail(
                sn,
                &sig_name,
                format!("it is not the signature logged in entry {}", logged.0),
            ));
        }
        if !verified.trusted_comment.contains(&sha256_hex(document)) {
            return Err(fail(sn, &sig_name, "its trusted comment names another document".into()));
        }
    }

    let mut proofs = 0;
    for id in &manifest.patches {
        let facts_name = format!("patches/{id}.json");
        let sig_name = format!("patches/{id}.minisig");
        let (fnum, facts) = named(&facts_name)?;
        let facts: PatchFacts = read(fnum, &facts_name, facts)?;
        let (sn, signature) = named(&sig_name)?;
        let signature = std::str::from_utf8(signature).map_err(|_| fail(sn, &sig_name, "not text".into()))?;
        let comment = signature
            .lines()
            .find_map(|l| l.strip_prefix("trusted comment: "))
            .ok_or_else(|| fail(sn, &sig_name, "it has no trusted comment".into()))?;
        let (index, entry) =
            find(&crate::domain::log::patch_subject(id), LogKind::PatchPublished).ok_or_else(|| {
                fail(
                    fnum,
                    &facts_name,
                    format!("no log entry records the publication of patch {id}"),
                )
            })?;
        if entry.text("signature_sha256") != Some(sha256_hex(signature.as_bytes()).as_str()) {
            return Err(fail(
                sn,
                &sig_name,
                format!("it is not the signature logged in entry {index}"),
            ));
        }
        if !comment.contains(&format!("sha256={}", facts.sha256)) || !comment.contains(&format!("id={id}")) {
            return Err(fail(sn, &sig_name, "its trusted comment names another file".into()));
        }
        if entry.text("sha256") != Some(facts.sha256.as_str()) || entry.text("version") != Some(facts.version.as_str())
        {
            return Err(fail(
                fnum,
                &facts_name,
                format!("it is not the patch logged in entry {index}"),
            ));
        }
        let proof_name = format!("patches/{id}.{PROOF_EXTENSION}");
        let Some((pn, proof)) = parsed.get(&proof_name) else {
            if witnesses.is_some() {
                return Err(format!("the bundle has no part {proof_name}"));
            }
            continue;
        };
        let bad = |why: String| fail(pn, &proof_name, why);
        let text = std::str::from_utf8(&proof.bytes).map_err(|_| bad("not text".into()))?;
        let proven = TlogProof::parse(text)
            .and_then(|proof| check_patch_proof(&proof, trusted))
            .map_err(bad)?;
        if proven.patch_id != *id
            || proven.entry.text("sha256") != Some(facts.sha256.as_str())
            || proven.entry.text("signature_sha256") != Some(sha256_hex(signature.as_bytes()).as_str())
        {
            return Err(bad(format!(
                "it proves entry {}, which is not the publication of this patch and signature",
                proven.index
            )));
        }
        quorum(&proven.checkpoint).map_err(bad)?;
        proofs += 1;
    }

    let (n, bytes) = named("log/openings.json")?;
    let openings: Vec<BundleOpening> = read(n, "log/openings.json", bytes)?;
    let mut opened: BTreeMap<u64, Entry> = BTreeMap::new();
    for opening in &openings {
        let sealed = entries.get(&opening.index).ok_or_else(|| {
            fail(
                n,
                "log/openings.json",
                format!("entry {} is not in the bundle", opening.index),
            )
        })?;
        let expected = sealed.text("commitment");
        if sealed.kind.is_some() || expected != Some(commitment(&opening.salt, &opening.entry).as_str()) {
            return Err(fail(
                n,
                "log/openings.json",
                format!(
                    "the opening of entry {} is not what the log committed to",
                    opening.index
                ),
            ));
        }
        let details = Entry::parse(&opening.entry).map_err(|e| fail(n, "log/openings.json", e))?;
        if details.text("customer") != Some(manifest.customer_id.as_str()) {
            return Err(fail(
                n,
                "log/openings.json",
                format!("entry {} is about another customer", opening.index),
            ));
        }
        opened.insert(opening.index, details);
    }
    if let Some((index, _)) = entries
        .iter()
        .find(|(i, e)| e.kind.is_none() && !opened.contains_key(i))
    {
        return Err(fail(
            n,
            "log/openings.json",
            format!("sealed entry {index} has no opening"),
        ));
    }

    let (n, bytes) = named("devices.json")?;
    let devices: Vec<DeviceFacts> = read(n, "devices.json", bytes)?;
    for device in &devices {
        for index in &device.entries {
            let details = opened.get(index).ok_or_else(|| {
                fail(
                    n,
                    "devices.json",
                    format!("device {} names entry {index}, which is not opened", device.id),
                )
            })?;
            if details.text("device") != Some(device.id.as_str()) {
                return Err(fail(
                    n,
                    "devices.json",
                    format!("entry {index} is not about device {}", device.id),
                ));
            }
        }
        let observed = device
            .entries
            .iter()
            .filter_map(|i| opened.get(i))
            .rfind(|e| matches!(e.kind, Some(LogKind::FixObserved | LogKind::DeviceEnrolled)));
        if let (Some(observed), Some(version)) = (observed, &device.version) {
            if observed.text("version") != Some(version.as_str()) {
                return Err(fail(
                    n,
                    "devices.json",
                    format!(
                        "device {} is said to run {version}, but the log last saw it run {}",
                        device.id,
                        observed.text("version").unwrap_or("nothing")
                    ),
                ));
            }
        }
    }

    let (n, signature) = named(SIGNATURE_PART)?;
    let signature = std::str::from_utf8(signature).map_err(|_| fail(n, SIGNATURE_PART, "not text".into()))?;
    let signer = signing::signer_key_id(signature).map_err(|e| fail(n, SIGNATURE_PART, e))?;
    let key = trusted(&signer).ok_or_else(|| {
        fail(
            n,
            SIGNATURE_PART,
            format!("signed by key {signer}, which is not trusted"),
        )
    })?;
    let verified = signing::verify(&key, std::io::Cursor::new(parsed.signed), signature).map_err(|e| {
        fail(
            n,
            SIGNATURE_PART,
            format!("the bundle's parts and headers are not the ones signed: {e}"),
        )
    })?;
    if verified.trusted_comment != bundle_comment(&manifest.advisory, &manifest.customer, head.tree_size) {
        return Err(fail(
            n,
            SIGNATURE_PART,
            format!(
                "its trusted comment `{}` is not this bundle's",
                verified.trusted_comment
            ),
        ));
    }
    Ok(BundleReport {
        manifest,
        head,
        entries: proven.len(),
        devices,
        checkpoint,
        proofs,
    })
}
