//! What the store holds, and removing a stored file: for the sweep of files that no
//! patch references any more.

use anyhow::Context;
use futures_util::TryStreamExt;
use object_store::ObjectStore;

use super::{is_sha256, object_key, Storage};

/// A stored file: its SHA-256 and when it was written.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub sha256: String,
    pub written_at: chrono::DateTime<chrono::Utc>,
}

impl Storage {
    /// Every finished file in the store.
    pub async fn list_files(&self) -> anyhow::Result<Vec<StoredFile>> {
        match self {
            Storage::Local { root } => {
                let root = root.join("sha256");
                tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<StoredFile>> {
                    let mut files = Vec::new();
                    for shard in std::fs::read_dir(&root).with_context(|| format!("listing {}", root.display()))? {
                        let shard = shard?.path();
                        if !shard.is_dir() {
                            continue;
                        }
                        for entry in
                            std::fs::read_dir(&shard).with_context(|| format!("listing {}", shard.display()))?
                        {
                            let entry = entry?;
                            let name = entry.file_name().to_string_lossy().into_owned();
                            if is_sha256(&name) {
                                let modified = entry.metadata()?.modified()?;
                                files.push(StoredFile {
                                    sha256: name,
                                    written_at: modified.into(),
                                });
                            }
                        }
                    }
                    Ok(files)
                })
                .await
                .context("listing stored files")?
            }
            Storage::S3 { store, prefix } => {
                let base = Self::s3_path(prefix, "sha256");
                let metas: Vec<object_store::ObjectMeta> = store
                    .list(Some(&base))
                    .try_collect()
                    .await
                    .context("listing stored objects")?;
                Ok(metas
                    .into_iter()
                    .filter_map(|meta| {
                        let name = meta.location.filename()?.to_owned();
                        is_sha256(&name).then_some(StoredFile {
                            sha256: name,
                            written_at: meta.last_modified,
                        })
                    })
                    .collect())
            }
        }
    }

    /// Removes the stored file `sha256`.
    pub async fn remove_file(&self, sha256: &str) -> anyhow::Result<()> {
        if !is_sha256(sha256) {
            anyhow::bail!("bad object reference");
        }
        match self {
            Storage::Local { root } => tokio::fs::remove_file(root.join(object_key(sha256)))
                .await
                .context("removing a stored file"),
            Storage::S3 { store, prefix } => store
                .delete(&Self::s3_path(prefix, &object_key(sha256)))
                .await
                .context("removing a stored object"),
        }
    }
}
