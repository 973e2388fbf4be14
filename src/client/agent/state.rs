//! The agent's local state: its identity, what it runs, the keys it learnt from
//! rotation statements and the download in progress. One small JSON file, replaced
//! atomically (written beside, synced, renamed, the directory synced), so a power
//! cut leaves the old state or the new one, never half of either.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::api::device::Offer;
use crate::api::log::SignedHead;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentState {
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub device_token: Option<String>,
    /// The version running now; `None` until the configuration's version is taken.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub image_sha256: Option<String>,
    /// Keys introduced by rotation statements that a trusted key signed.
    #[serde(default)]
    pub learnt_keys: Vec<LearntKey>,
    /// The download in progress, with the validator that lets it resume.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// The newest signed tree head of the transparency log the agent accepted: an
    /// answer with an older, expired or inconsistent head is refused.
    #[serde(default)]
    pub log_head: Option<SignedHead>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LearntKey {
    pub key_id: String,
    pub public_key: String,
    pub introduced_by: String,
    /// The statement declared `introduced_by` compromised after this log size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_after: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub offer: Offer,
    #[serde(default)]
    pub etag: Option<String>,
    /// Downloaded and verified, waiting for the maintenance window to install.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
}

impl AgentState {
    /// The state in `path`, or an empty one when there is none yet.
    pub fn load(path: &Path) -> anyhow::Result<AgentState> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the agent state {} is not readable; move it aside to start afresh",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the state in `path` atomically. The file is private to the agent's
    /// user: it holds the device token.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        let temporary = dir.join(format!(".{name}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).context("encoding the agent state")?;
        // Made afresh, never opened: a file or link left in its place (by a crash, or
        // planted) would keep its own mode and owner, or point the token elsewhere.
        match std::fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", temporary.display())),
        }
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&temporary)
                .with_context(|| format!("creating {}", temporary.display()))?;
            file.write_all(&bytes)
                .with_context(|| format!("writing {}", temporary.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing {}", temporary.display()))?;
        }
        std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
        #[cfg(unix)]
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_reads_back_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent").join("state.json");
        assert_eq!(AgentState::load(&path).unwrap(), AgentState::default());
        let state = AgentState {
            device_id: Some("dev_1".into()),
            device_token: Some("pwd_secret".into()),
            version: Some("6.3.0r21".into()),
            ..AgentState::default()
        };
        state.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), state);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("state.json")],
            "no temporary file is left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A file or a link planted where the temporary file goes is not written through.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let temporary = path.parent().unwrap().join(".state.json.tmp");
            let elsewhere = dir.path().join("elsewhere");
            std::fs::write(&elsewhere, b"untouched").unwrap();
            std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &temporary).unwrap();
            state.save(&path).unwrap();
            assert_eq!(std::fs::read(&elsewhere).unwrap(), b"untouched");
            std::fs::write(&temporary, b"planted").unwrap();
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o666)).unwrap();
            state.save(&path).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(AgentState::load(&path).unwrap(), state);
        }
        std::fs::write(&path, b"{not json").unwrap();
        let err = AgentState::load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("not readable"), "{err:#}");
    }
}
