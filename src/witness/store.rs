//! What a witness keeps on disk: its key (created on first start, readable by its
//! owner only) and, per log, the checkpoint it cosigned last. The state is replaced
//! atomically and synced (file and directory) before a cosignature is answered, so
//! a witness killed at any point comes back holding the last checkpoint it answered
//! for, or a later one it never answered for, and never cosigns two roots for one
//! size.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::domain::merkle::Hash;
use crate::domain::note::{valid_key_name, NoteSigner, TYPE_COSIGNATURE_V1};

/// The witness's key file inside its directory.
pub const KEY_FILE: &str = "witness.key";
/// The witness's state inside its directory.
pub const STATE_FILE: &str = "state.json";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Opens the witness key in `dir`, or creates one named `name` (mode 0600) when
/// there is none. A key is read as `PRIVATE+KEY+<name>+<hex id>+<base64 of the type
/// byte and the Ed25519 seed>`.
pub fn open_key(dir: &Path, name: Option<&str>) -> anyhow::Result<NoteSigner> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let signer = read_key(text.trim()).with_context(|| format!("reading {}", path.display()))?;
        if let Some(name) = name.filter(|n| *n != signer.verifier().name) {
            bail!(
                "{} holds the key of witness `{}`, not `{name}`",
                path.display(),
                signer.verifier().name
            );
        }
        return Ok(signer);
    }
    let name = name.unwrap_or("patchwarden-witness");
    if !valid_key_name(name) {
        bail!("`{name}` is not a witness name (no `+`, spaces or control characters)");
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let seed: [u8; 32] = crate::random::bytes();
    let signer = NoteSigner::from_seed(name, TYPE_COSIGNATURE_V1, &seed).map_err(anyhow::Error::msg)?;
    let mut key = vec![TYPE_COSIGNATURE_V1];
    key.extend_from_slice(&seed);
    let text = format!(
        "PRIVATE+KEY+{name}+{}+{}\n",
        hex::encode(signer.verifier().id),
        b64().encode(key)
    );
    // Created anew, readable by its owner only, and synced.
    crate::signing::write_private(&path, text.as_bytes())?;
    sync_dir(dir)?;
    Ok(signer)
}

fn read_key(text: &str) -> anyhow::Result<NoteSigner> {
    let rest = text
        .strip_prefix("PRIVATE+KEY+")
        .context("a witness key starts with PRIVATE+KEY+")?;
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("a witness key is PRIVATE+KEY+name+id+key");
    };
    let key = b64().decode(key).context("the key is not base64")?;
    let (&kind, seed) = key.split_first().context("the key is empty")?;
    if kind != TYPE_COSIGNATURE_V1 {
        bail!("the key is not a cosignature key (type 0x04)");
    }
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| anyhow::anyhow!("the seed is not 32 bytes"))?;
    let signer = NoteSigner::from_seed(name, kind, &seed).map_err(anyhow::Error::msg)?;
    if hex::encode(signer.verifier().id) != id.to_ascii_lowercase() {
        bail!("the key's id does not match its name and key");
    }
    Ok(signer)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// The checkpoint a witness cosigned last for one log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosigned {
    pub size: u64,
    pub root: Hash,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    /// By origin.
    logs: BTreeMap<String, StoredLog>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLog {
    size: u64,
    /// Base64.
    root: String,
}

/// The state file and what it holds.
pub struct StateFile {
    path: PathBuf,
    held: BTreeMap<String, Cosigned>,
}

impl StateFile {
    /// Reads the state at `path` (none yet: nothing cosigned).
    pub fn open(path: &Path) -> anyhow::Result<StateFile> {
        let stored: Stored = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut held = BTreeMap::new();
        for (origin, log) in stored.logs {
            let root = b64()
                .decode(&log.root)
                .ok()
                .and_then(|r| Hash::try_from(r).ok())
                .with_context(|| format!("{}: the root of {origin} is not a base64 hash", path.display()))?;
            held.insert(origin, Cosigned { size: log.size, root });
        }
        Ok(StateFile {
            path: path.to_owned(),
            held,
        })
    }

    /// What was cosigned last for `origin`.
    pub fn get(&self, origin: &str) -> Option<Cosigned> {
        self.held.get(origin).copied()
    }

    /// Records `cosigned` for `origin`: written to a new file, synced, renamed over
    /// the old one and the directory synced, before this returns. On failure the
    /// state in memory is unchanged.
    pub fn record(&mut self, origin: &str, cosigned: Cosigned) -> anyhow::Result<()> {
        let mut next = self.held.clone();
        next.insert(origin.to_owned(), cosigned);
        let stored = Stored {
            logs: next
                .iter()
                .map(|(origin, c)| {
                    (
                        origin.clone(),
                        StoredLog {
                            size: c.size,
                            root: b64().encode(c.root),
                        },
                    )
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&stored)?;
        let temporary = self.path.with_extension("json.new");
        let mut file = fs::File::create(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", temporary.display()))?;
        drop(file);
        fs::rename(&temporary, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.held = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let made = open_key(dir.path(), Some("w1.example")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let read = open_key(dir.path(), None).unwrap();
        assert_eq!(read.verifier(), made.verifier());
        assert_eq!(read.verifier().kind, TYPE_COSIGNATURE_V1);
        let err = open_key(dir.path(), Some("another")).unwrap_err();
        assert!(err.to_string().contains("w1.example"), "{err}");
    }

    #[test]
    fn the_state_survives_a_reopen_and_a_leftover_new_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut state = StateFile::open(&path).unwrap();
        assert_eq!(state.get("log"), None);
        let cosigned = Cosigned { size: 7, root: [9; 32] };
        state.record("log", cosigned).unwrap();
        // A write that broke off before its rename leaves only the new file behind.
        fs::write(path.with_extension("json.new"), b"{\"logs\": {").unwrap();
        assert_eq!(StateFile::open(&path).unwrap().get("log"), Some(cosigned));
    }
}
