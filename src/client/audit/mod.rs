//! Auditing a patchwarden server from outside, and checking an evidence bundle
//! offline: what a customer's security team runs from cron, with the vendor's
//! public key and nothing else to trust.
//!
//! Online ([`audit`]): the newest tree head must be signed by the pinned key (or a
//! key that a chain of rotation statements leads to from it), must not be older
//! than the head seen last time (kept in a state file), and must extend it (a
//! consistency proof). Every entry is fetched and hashed again: the entries must
//! be contiguous and hash to the signed root, and to the earlier head's root over
//! its prefix, so an entry rewritten after it was signed is found. Every advisory
//! revision and patch the server lists must be in the log with the hash of what was
//! signed, and every advisory or patch the log records must be listed.
//!
//! Offline ([`verify_bundle`], in `offline`): see [`crate::services::evidence`].

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::api::advisories::AdvisoryList;
use crate::api::device::KeyResponse;
use crate::api::log::{parse_proof, ConsistencyProof, EntriesPage, InclusionProof, LogHead, SignedHead};
use crate::api::patches::PatchResponse;
use crate::client::agent::verify::Keyring;
use crate::domain::log::{revocations_digest, sha256_hex, Entry, LogKind, Revocation, TreeHead};
use crate::domain::merkle::{leaf_hash, verify_consistency, verify_inclusion, Frontier};
use crate::domain::note::Note;
use crate::domain::PatchState;
use crate::signing;

mod offline;

pub use offline::{verify_bundle, BundleReport};

/// What the auditor keeps between runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditState {
    pub head: SignedHead,
}

/// What an audit found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What holds, for the record.
    pub checked: Vec<String>,
    /// What does not: each is a reason to distrust the server.
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether a problem of `kind` was found.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    fn problem(&mut self, kind: ProblemKind, detail: impl Into<String>) {
        self.problems.push(Problem {
            kind,
            detail: detail.into(),
        });
    }
}

/// One reason to distrust the server, by what it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
}

/// What a problem breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The tree head does not verify or has expired.
    Head,
    /// The log now has another name than the one seen before.
    Renamed,
    /// The head is older than the one seen before.
    Rollback,
    /// The log does not extend the one seen before.
    Fork,
    /// The server does not serve every entry of the tree.
    Gap,
    /// An entry as served is not the entry the signed roots include.
    Rewritten,
    /// An entry's text is not an entry.
    Unreadable,
    /// The head's list of yanked patches is not the one its entries record.
    Revocations,
    /// A signature by a key declared compromised, made after it was declared so.
    Compromised,
    /// The server serves what the log does not record as it is served.
    Unlogged,
    /// The log records what the server does not list.
    Unlisted,
    /// The head lacks the cosignatures the witness policy's quorum needs.
    Witnesses,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Head => "head",
            ProblemKind::Renamed => "renamed",
            ProblemKind::Rollback => "rollback",
            ProblemKind::Fork => "fork",
            ProblemKind::Gap => "gap",
            ProblemKind::Rewritten => "rewritten",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::Revocations => "revocations",
            ProblemKind::Compromised => "compromised",
            ProblemKind::Unlogged => "unlogged",
            ProblemKind::Unlisted => "unlisted",
            ProblemKind::Witnesses => "witnesses",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

/// How an audit is run.
pub struct AuditRequest {
    pub server: Url,
    pub public_key: String,
    pub state_file: Option<std::path::PathBuf>,
    /// An API token: the patches it may see are checked against the log too.
    pub token: Option<String>,
    /// The head must carry this witness policy's quorum of cosignatures, none older
    /// than an hour.
    pub witness_policy: Option<crate::domain::policy::Policy>,
}

async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    token: Option<&str>,
) -> anyhow::Result<T> {
    let mut request = http.get(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("fetching {url}"))?;
    let status = response.status();
    let bytes = response.bytes().await.with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{url} answered JSON that is not understood"))
}

fn keyring(public_key: &str, listing: &[KeyResponse]) -> anyhow::Result<Keyring> {
    let mut ring = Keyring::new(&[public_key.to_owned()], &[]).map_err(anyhow::Error::msg)?;
    ring.learn(listing);
    Ok(ring)
}

fn verify_head(ring: &Keyring, head: &SignedHead) -> Result<TreeHead, String> {
    head.verify(|id| ring.public_key(id))
}

/// Audits the server once. Saves the new head to the state file only when nothing
/// is wrong, so a later run compares with the last head that was trusted.
pub async fn audit(request: &AuditRequest) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("patchwarden-audit/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let url = |path: &str| {
        request
            .server
            .join(path)
            .with_context(|| format!("`{path}` is not a URL"))
    };
    let mut report = Report::default();
    let listing: Vec<KeyResponse> = get(&http, url("/api/v1/keys")?, None).await?;
    let ring = keyring(&request.public_key, &listing)?;
    let served: LogHead = get(&http, url("/api/v1/log/head")?, None).await?;
    let verified = served
        .verify(|id| ring.public_key(id))
        .and_then(|(head, _)| Ok((head, served.signed_head()?)));
    let (head, signed) = match verified {
        Ok(verified) => verified,
        Err(why) => {
            report.problem(ProblemKind::Head, format!("the tree head does not verify: {why}"));
            return Ok(report);
        }
    };
    if let Some(policy) = &request.witness_policy {
        let cosigned = Note::parse(&served.checkpoint).map(|note| {
            let now = chrono::Utc::now().timestamp().max(0) as u64;
            policy.check_note(&note, now, 3600)
        });
        match cosigned {
            Ok(Ok(())) => report.checked.push(format!(
                "the witnesses' quorum `{}` cosigned the head",
                policy.quorum_name()
            )),
            Ok(Err(why)) | Err(why) => report.problem(ProblemKind::Witnesses, why),
        }
    }
    report.checked.push(format!(
        "tree head {} of log {}: {} entries, signed {} by key {}",
        head.sequence, head.origin, head.tree_size, head.timestamp, signed.key_id
    ));
    if head.expires_at <= chrono::Utc::now() {
        report.problem(
            ProblemKind::Head,
            format!("the tree head expired at {}", head.expires_at),
        );
    }
    if let Some(after) = ring.compromised_after(&signed.key_id) {
        if head.tree_size > after {
            report.problem(ProblemKind::Compromised, format!(
                "the tree head of {} entries is signed by key {}, which a rotation declared compromised after {after} entries",
                head.tree_size, signed.key_id
            ));
        }
    }

    let held = match &request.state_file {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let state: AuditState =
                serde_json::from_str(&text).with_context(|| format!("{} is not an audit state", path.display()))?;
            let held = verify_head(&ring, &state.head)
                .map_err(|e| anyhow::anyhow!("the head in {} does not verify: {e}", path.display()))?;
            Some(held)
        }
        _ => None,
    };
    if let Some(held) = &held {
        if held.origin != head.origin {
            report.problem(
                ProblemKind::Renamed,
                format!("the log is now `{}`; it was `{}`", head.origin, held.origin),
            );
        } else if head.sequence < held.sequence || head.tree_size < held.tree_size {
            report.problem(
                ProblemKind::Rollback,
                format!(
                    "the head (sequence {}, {} entries) is older than the one seen before (sequence {}, {} entries)",
                    head.sequence, head.tree_size, held.sequence, held.tree_size
                ),
            );
        } else if head.tree_size == held.tree_size {
            if head.root_hash != held.root_hash {
                report.problem(
                    ProblemKind::Fork,
                    format!(
                        "{} entries with another root hash than the head seen before",
                        head.tree_size
                    ),
                );
            }
        } else {
            let proof: ConsistencyProof = get(
                &http,
                url(&format!(
                    "/api/v1/log/proof/consistency?from={}&to={}",
                    held.tree_size, head.tree_size
                ))?,
                None,
            )
            .await?;
            let checked = parse_proof(&proof.proof).and_then(|p| {
                verify_consistency(held.tree_size, head.tree_size, &held.root_hash, &head.root_hash, &p)
                    .map_err(|e| e.to_string())
            });
            match checked {
                Ok(()) => report.checked.push(format!(
                    "the log of {} entries extends the {} seen before",
                    head.tree_size, held.tree_size
                )),
                Err(why) => report.problem(
                    ProblemKind::Fork,
                    format!(
                        "the log of {} entries does not extend the {} seen before: {why}",
                        head.tree_size, held.tree_size
                    ),
                ),
            }
        }
    }

    // Every entry, hashed again.
    let mut frontier = Frontier::default();
    let mut entries: Vec<(u64, String)> = Vec::with_capacity(head.tree_size as usize);
    while frontier.size() < head.tree_size {
        let start = frontier.size();
        let page: EntriesPage = get(
            &http,
            url(&format!("/api/v1/log/entries?start={start}&end={}", head.tree_size))?,
            None,
        )
        .await?;
        if page.entries.is_empty() {
            report.problem(ProblemKind::Gap, format!("the server serves no entry {start}"));
            break;
        }
        for entry in page.entries {
            if entry.index != frontier.size() {
                report.problem(
                    ProblemKind::Gap,
                    format!(
                        "entry {} follows entry {}",
                        entry.index,
                        frontier.size().wrapping_sub(1)
                    ),
                );
                break;
            }
            let hash = leaf_hash(entry.leaf.as_bytes());
            if hex::encode(hash) != entry.leaf_hash {
                report.problem(
                    ProblemKind::Rewritten,
                    format!(
                        "entry {}: its text hashes to {}, the server says {}",
                        entry.index,
                        hex::encode(hash),
                        entry.leaf_hash
                    ),
                );
            }
            frontier.push(hash);
            if let Some(held) = &held {
                if frontier.size() == held.tree_size && frontier.root() != held.root_hash {
                    report.problem(
                        ProblemKind::Rewritten,
                        format!(
                        "the first {} entries as served now do not hash to the root signed in the head seen before: \
                         an entry was changed after it was logged",
                        held.tree_size
                    ),
                    );
                }
            }
            entries.push((entry.index, entry.leaf));
        }
        if report.has(ProblemKind::Gap) {
            break;
        }
    }
    if frontier.size() == head.tree_size {
        if frontier.root() == head.root_hash {
            report
                .checked
                .push(format!("all {} entries hash to the signed root", head.tree_size));
        } else {
            report.problem(
                ProblemKind::Rewritten,
                format!(
                    "the {} entries served do not hash to the signed root: an entry was changed or replaced",
                    head.tree_size
                ),
            );
        }
    }

    // What the log records, by subject.
    let mut logged: HashMap<String, Vec<(u64, Entry)>> = HashMap::new();
    for (index, text) in &entries {
        match Entry::parse(text) {
            Ok(entry) => {
                if let Some(subject) = entry.subject.clone() {
                    logged.entry(subject).or_default().push((*index, entry));
                }
            }
            Err(why) => report.problem(ProblemKind::Unreadable, format!("entry {index}: {why}")),
        }
    }

    // The yanked patches the head commits to are those its tree records.
    if frontier.size() == head.tree_size {
        let revoked: Vec<Revocation> = entries
            .iter()
            .filter_map(|(index, text)| Revocation::of_entry(*index, text))
            .collect();
        match head.revoked {
            Some(digest) if digest == revocations_digest(&revoked) => report.checked.push(format!(
                "the head commits to the {} yanked patches its entries record",
                revoked.len()
            )),
            Some(_) => report.problem(
                ProblemKind::Revocations,
                "the head's list of yanked patches is not the one its entries record: a yank is hidden or invented",
            ),
            None => report.problem(
                ProblemKind::Revocations,
                "the head commits to no list of yanked patches",
            ),
        }
    }

    // Nothing signed by a key declared compromised, past the point it was declared so.
    for (index, text) in &entries {
        let Ok(entry) = Entry::parse(text) else { continue };
        let signed_by = entry.text("key_id");
        let kind = entry.kind.filter(|k| k.is_advisory() || *k == LogKind::PatchPublished);
        if let (Some(kind), Some(key_id)) = (kind, signed_by) {
            if ring.compromised_after(key_id).is_some_and(|after| *index >= after) {
                report.problem(ProblemKind::Compromised, format!(
                    "entry {index} ({kind}, {}) is signed by key {key_id}, which a rotation declared compromised before it was logged",
                    entry.subject.as_deref().unwrap_or_default()
                ));
            }
        }
    }

    // Advisories listed by the server.
    let mut listed_advisories = BTreeSet::new();
    let mut page = 1;
    loop {
        let list: AdvisoryList = get(
            &http,
            url(&format!("/api/v1/advisories?per_page=100&page={page}"))?,
            None,
        )
        .await?;
        for advisory in &list.advisories {
            for revision in 1..=advisory.revision {
                let subject = crate::domain::log::advisory_subject(&advisory.id, revision);
                listed_advisories.insert(subject.clone());
                let revision_url = url(&format!("/api/v1/advisories/{}/revisions/{revision}", advisory.id))?;
                let document = http.get(revision_url.clone()).send().await?.bytes().await?;
                let signature = http
                    .get(url(&format!(
                        "/api/v1/advisories/{}/revisions/{revision}/minisig",
                        advisory.id
                    ))?)
                    .send()
                    .await?
                    .text()
                    .await?;
                let found = logged.get(&subject).and_then(|e| e.last());
                match found {
                    None => report.problem(
                        ProblemKind::Unlogged,
                        format!("{} revision {revision} is listed but not in the log", advisory.id),
                    ),
                    Some((index, entry)) => {
                        if entry.text("sha256") != Some(sha256_hex(&document).as_str())
                            || entry.text("signature_sha256") != Some(sha256_hex(signature.as_bytes()).as_str())
                        {
                            report.problem(ProblemKind::Unlogged, format!(
                                "{} revision {revision}: the document or signature served is not the one logged in entry {index}",
                                advisory.id
                            ));
                        }
                        check_inclusion(&http, &url, &head, *index, &entries, &mut report).await?;
                    }
                }
            }
        }
        if list.advisories.is_empty() || i64::from(page) * i64::from(list.per_page) >= list.total {
            break;
        }
        page += 1;
    }
    for (subject, logs) in &logged {
        if logs.iter().any(|(_, e)| e.kind.is_some_and(LogKind::is_advisory)) && !listed_advisories.contains(subject) {
            report.problem(
                ProblemKind::Unlisted,
                format!(
                    "the log records {subject} (entry {}), which the server does not list",
                    logs[0].0
                ),
            );
        }
    }
    report.checked.push(format!(
        "{} advisory revisions listed and logged",
        listed_advisories.len()
    ));

    // Patches the token may see.
    if let Some(token) = &request.token {
        let patches: Vec<PatchResponse> = get(&http, url("/api/v1/patches")?, Some(token)).await?;
        let mut listed = BTreeSet::new();
        for patch in patches.iter().filter(|p| p.state != PatchState::Draft) {
            let subject = crate::domain::log::patch_subject(&patch.id);
            listed.insert(subject.clone());
            let published = logged
                .get(&subject)
                .and_then(|e| e.iter().find(|(_, e)| e.kind == Some(LogKind::PatchPublished)));
            let Some((index, entry)) = published else {
                report.problem(
                    ProblemKind::Unlogged,
                    format!("patch {} is listed but its publication is not in the log", patch.id),
                );
                continue;
            };
            let signature = patch.signature.as_deref().unwrap_or_default();
            if entry.text("sha256") != patch.sha256.as_deref()
                || entry.text("signature_sha256") != Some(sha256_hex(signature.as_bytes()).as_str())
            {
                report.problem(
                    ProblemKind::Unlogged,
                    format!(
                        "patch {}: the file hash or signature served is not the one logged in entry {index}",
                        patch.id
                    ),
                );
            }
            if patch.state == PatchState::Yanked
                && !logged[&subject]
                    .iter()
                    .any(|(_, e)| e.kind == Some(LogKind::PatchYanked))
            {
                report.problem(
                    ProblemKind::Unlogged,
                    format!("patch {} is yanked but its yanking is not in the log", patch.id),
                );
            }
            check_inclusion(&http, &url, &head, *index, &entries, &mut report).await?;
        }
        let vendor = get::<serde_json::Value>(&http, url("/api/v1/me")?, Some(token))
            .await
            .map(|me| me["role"].as_str().is_some_and(|r| r.starts_with("vendor")))
            .unwrap_or(false);
        let unlisted: Vec<&String> = logged
            .iter()
            .filter(|(s, e)| e.iter().any(|(_, e)| e.kind == Some(LogKind::PatchPublished)) && !listed.contains(*s))
            .map(|(s, _)| s)
            .collect();
        if vendor {
            for subject in unlisted {
                report.problem(
                    ProblemKind::Unlisted,
                    format!("the log records {subject}, which the server does not list"),
                );
            }
        } else if !unlisted.is_empty() {
            report.checked.push(format!(
                "{} logged patches are not listed to this customer (not entitled)",
                unlisted.len()
            ));
        }
        report
            .checked
            .push(format!("{} patches listed and logged", listed.len()));
    } else {
        report
            .checked
            .push("patches not listed: give --token to check the patches a token may see".into());
    }

    if report.ok() {
        if let Some(path) = &request.state_file {
            let state = AuditState { head: signed.clone() };
            let text = serde_json::to_string_pretty(&state)?;
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
            std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
        }
    }
    Ok(report)
}

/// Checks the server's inclusion proof of entry `index` against the head and the
/// entry as served: it names the entry when its stored text was changed.
async fn check_inclusion(
    http: &reqwest::Client,
    url: &impl Fn(&str) -> anyhow::Result<Url>,
    head: &TreeHead,
    index: u64,
    entries: &[(u64, String)],
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some((_, text)) = entries.iter().find(|(i, _)| *i == index) else {
        return Ok(());
    };
    let proof: InclusionProof = get(
        http,
        url(&format!(
            "/api/v1/log/proof/inclusion?index={index}&tree_size={}",
            head.tree_size
        ))?,
        None,
    )
    .await?;
    let checked = parse_proof(&proof.proof).and_then(|p| {
        verify_inclusion(index, head.tree_size, &leaf_hash(text.as_bytes()), &p, &head.root_hash)
            .map_err(|e| e.to_string())
    });
    if let Err(why) = checked {
        report.problem(
            ProblemKind::Rewritten,
            format!("entry {index} as served is not the entry the signed head includes: {why}"),
        );
    }
    Ok(())
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    signing::PublicKeyInfo::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(text)
}
