//! Partial files of resumable uploads, in the same storage as the finished files:
//! a local partial file per upload, or an S3 multipart upload that outlives the
//! request, with the bytes after the last whole part in a small tail object. A
//! request appends from the recorded offset; the caller records the new offset, and
//! the last byte turns the partial data into a stored file under its SHA-256.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{
    check_expected, object_key, publish_local, remove_if_present, Arrival, Intake, OverLimit, Storage, StorageError,
    StoredObject, READ_CHUNK, S3_PART,
};

/// Where a resumable upload stands in storage. Local storage keeps one partial file;
/// S3 keeps an open multipart upload whose parts are all `S3_PART` bytes, plus the
/// bytes after the last whole part in a small tail object named by the offset it
/// ends at, so a tail written by a request that never got recorded is never read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialUpload {
    pub key: String,
    pub multipart_id: Option<String>,
    pub parts: Vec<String>,
    pub size: u64,
    pub received: u64,
}

impl PartialUpload {
    fn tail_len(&self) -> u64 {
        if self.received == self.size {
            0
        } else {
            self.received - self.parts.len() as u64 * S3_PART as u64
        }
    }

    pub fn is_complete(&self) -> bool {
        self.received == self.size
    }
}

/// What one request added to a resumable upload.
#[derive(Debug)]
pub struct Appended {
    pub upload: PartialUpload,
    /// The file's SHA-256, when this request carried the whole file.
    pub sha256: Option<String>,
    /// Why the body ended early; what arrived before is kept.
    pub interrupted: Option<String>,
}

fn upload_key_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

impl Storage {
    fn upload_path(root: &Path, key: &str) -> PathBuf {
        root.join("uploads").join(key)
    }

    fn upload_object(prefix: &str, key: &str) -> ObjectPath {
        Self::s3_path(prefix, &format!("uploads/{key}"))
    }

    fn tail_object(prefix: &str, key: &str, ends_at: u64) -> ObjectPath {
        Self::s3_path(prefix, &format!("uploads/{key}.tail-{ends_at}"))
    }

    /// Starts a resumable upload of `size` bytes.
    pub async fn begin_upload(&self, size: u64) -> Result<PartialUpload, StorageError> {
        let key = uuid::Uuid::now_v7().to_string();
        let multipart_id = match self {
            Storage::Local { root } => {
                tokio::fs::File::create(Self::upload_path(root, &key))
                    .await
                    .context("creating a partial upload file")?;
                None
            }
            Storage::S3 { store, prefix } => Some(
                store
                    .create_multipart(&Self::upload_object(prefix, &key))
                    .await
                    .context("starting a multipart upload")?,
            ),
        };
        Ok(PartialUpload {
            key,
            multipart_id,
            parts: Vec::new(),
            size,
            received: 0,
        })
    }

    /// Appends `body` to an upload at the offset it has reached. A body that breaks
    /// off is not an error: what arrived is kept and reported with the reason.
    pub async fn append_upload<S, E>(&self, upload: &PartialUpload, mut body: S) -> Result<Appended, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut next = upload.clone();
        // Only a body that starts at the first byte can be hashed on the way.
        let mut intake = Intake::new(upload.received, upload.size, upload.received == 0);
        let mut interrupted = None;
        match self {
            Storage::Local { root } => {
                use tokio::io::AsyncSeekExt;
                let path = Self::upload_path(root, &upload.key);
                let file = match tokio::fs::OpenOptions::new().write(true).open(&path).await {
                    Ok(file) => file,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(StorageError::Lost),
                    Err(err) => return Err(anyhow::Error::new(err).context("opening a partial upload").into()),
                };
                let held = file.metadata().await.context("reading a partial upload")?.len();
                if held < upload.received {
                    return Err(StorageError::Lost);
                }
                // Bytes past the recorded offset belong to a request that was never
                // recorded (the server stopped mid-request): they are dropped.
                file.set_len(upload.received)
                    .await
                    .context("trimming a partial upload")?;
                let mut file = file;
                file.seek(io::SeekFrom::Start(upload.received))
                    .await
                    .context("seeking in a partial upload")?;
                let mut writer = tokio::io::BufWriter::with_capacity(READ_CHUNK, file);
                loop {
                    match intake.next(&mut body).await {
                        Ok(Arrival::Chunk(chunk)) => {
                            writer.write_all(&chunk).await.context("writing a partial upload")?;
                        }
                        Ok(Arrival::End) => break,
                        Ok(Arrival::Broken(reason)) => {
                            interrupted = Some(reason);
                            break;
                        }
                        Err(OverLimit) => return Err(StorageError::BeyondSize { size: upload.size }),
                    }
                }
                next.received = intake.received;
                writer.flush().await.context("writing a partial upload")?;
                writer.get_ref().sync_data().await.context("syncing a partial upload")?;
            }
            Storage::S3 { store, prefix } => {
                let multipart_id = upload.multipart_id.clone().ok_or(StorageError::Lost)?;
                let path = Self::upload_object(prefix, &upload.key);
                let mut buffer = bytes::BytesMut::with_capacity(S3_PART);
                let tail_len = upload.tail_len();
                if tail_len > 0 {
                    let tail = match store
                        .get(&Self::tail_object(prefix, &upload.key, upload.received))
                        .await
                    {
                        Ok(tail) => tail.bytes().await.context("reading the tail of an upload")?,
                        Err(object_store::Error::NotFound { .. }) => return Err(StorageError::Lost),
                        Err(err) => {
                            return Err(anyhow::Error::new(err).context("reading the tail of an upload").into())
                        }
                    };
                    if tail.len() as u64 != tail_len {
                        return Err(StorageError::Lost);
                    }
                    buffer.extend_from_slice(&tail);
                }
                loop {
                    let chunk = match intake.next(&mut body).await {
                        Ok(Arrival::Chunk(chunk)) => chunk,
                        Ok(Arrival::End) => break,
                        Ok(Arrival::Broken(reason)) => {
                            interrupted = Some(reason);
                            break;
                        }
                        Err(OverLimit) => return Err(StorageError::BeyondSize { size: upload.size }),
                    };
                    buffer.extend_from_slice(&chunk);
                    while buffer.len() >= S3_PART {
                        let part = buffer.split_to(S3_PART).freeze();
                        let id = store
                            .put_part(&path, &multipart_id, next.parts.len(), part.into())
                            .await
                            .context("uploading a part")?;
                        next.parts.push(id.content_id);
                    }
                }
                next.received = intake.received;
                if !buffer.is_empty() {
                    let rest = buffer.freeze();
                    if next.is_complete() {
                        // The last part of a multipart upload may be short.
                        let id = store
                            .put_part(&path, &multipart_id, next.parts.len(), rest.into())
                            .await
                            .context("uploading the last part")?;
                        next.parts.push(id.content_id);
                    } else {
                        store
                            .put(&Self::tail_object(prefix, &upload.key, next.received), rest.into())
                            .await
                            .context("storing the tail of an upload")?;
                    }
                }
            }
        }
        let sha256 = if next.is_complete() { intake.sha256() } else { None };
        Ok(Appended {
            upload: next,
            sha256,
            interrupted,
        })
    }

    /// Removes what an upload's earlier state kept and its later state no longer needs.
    pub async fn drop_superseded(&self, before: &PartialUpload, after: &PartialUpload) {
        if let Storage::S3 { store, prefix } = self {
            if before.tail_len() > 0 && before.received != after.received {
                let tail = Self::tail_object(prefix, &before.key, before.received);
                if let Err(err) = store.delete(&tail).await {
                    tracing::warn!(error = %err, "could not remove the tail of an upload");
                }
            }
        }
    }

    /// Turns a complete upload into a stored file, if its hash matches `expected`.
    /// `sha256` is the hash when the caller saw every byte. Whatever the outcome, the
    /// partial data is gone afterwards.
    pub async fn finish_upload(
        &self,
        upload: &PartialUpload,
        sha256: Option<String>,
        expected: Option<&str>,
    ) -> Result<StoredObject, StorageError> {
        let outcome = self.publish_upload(upload, sha256, expected).await;
        if outcome.is_err() {
            self.abort_upload(upload).await;
        }
        outcome
    }

    async fn publish_upload(
        &self,
        upload: &PartialUpload,
        sha256: Option<String>,
        expected: Option<&str>,
    ) -> Result<StoredObject, StorageError> {
        if !upload.is_complete() {
            return Err(StorageError::Backend(anyhow::anyhow!("the upload is not complete")));
        }
        match self {
            Storage::Local { root } => {
                let path = Self::upload_path(root, &upload.key);
                let held = match tokio::fs::metadata(&path).await {
                    Ok(meta) => meta.len(),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(StorageError::Lost),
                    Err(err) => return Err(anyhow::Error::new(err).context("reading a partial upload").into()),
                };
                if held != upload.size {
                    return Err(StorageError::Lost);
                }
                let sha256 = match sha256 {
                    Some(sha256) => sha256,
                    None => {
                        let file = std::fs::File::open(&path).context("opening a partial upload")?;
                        let size = upload.size;
                        tokio::task::spawn_blocking(move || hash_reader(file, size))
                            .await
                            .context("hashing an upload")??
                    }
                };
                publish_local(root, &path, &sha256, expected).await?;
                Ok(StoredObject {
                    sha256,
                    size: upload.size,
                })
            }
            Storage::S3 { store, prefix } => {
                let path = Self::upload_object(prefix, &upload.key);
                let multipart_id = upload.multipart_id.clone().ok_or(StorageError::Lost)?;
                let parts = upload
                    .parts
                    .iter()
                    .map(|content_id| PartId {
                        content_id: content_id.clone(),
                    })
                    .collect();
                if let Err(err) = store.complete_multipart(&path, &multipart_id, parts).await {
                    // A completion whose answer was lost (the server stopped) left the
                    // whole object in place; anything else is a failure.
                    match store.head(&path).await {
                        Ok(meta) if meta.size == upload.size => {}
                        _ => return Err(anyhow::Error::new(err).context("completing an upload").into()),
                    }
                }
                let sha256 = match sha256 {
                    Some(sha256) => sha256,
                    None => {
                        let mut stream = store.get(&path).await.context("reading an upload")?.into_stream();
                        let mut hasher = Sha256::new();
                        while let Some(chunk) = stream.next().await {
                            hasher.update(chunk.context("reading an upload")?);
                        }
                        hex::encode(hasher.finalize())
                    }
                };
                check_expected(expected, &sha256)?;
                let target = Self::s3_path(prefix, &object_key(&sha256));
                store.copy(&path, &target).await.context("publishing an object")?;
                if let Err(err) = store.delete(&path).await {
                    tracing::warn!(error = %err, "could not remove a completed upload");
                }
                Ok(StoredObject {
                    sha256,
                    size: upload.size,
                })
            }
        }
    }

    /// Removes an upload's partial data; failures are logged, not returned.
    pub async fn abort_upload(&self, upload: &PartialUpload) {
        match self {
            Storage::Local { root } => {
                remove_if_present(&Self::upload_path(root, &upload.key), "a partial upload").await;
            }
            Storage::S3 { store, prefix } => {
                let path = Self::upload_object(prefix, &upload.key);
                if let Some(id) = &upload.multipart_id {
                    if let Err(err) = store.abort_multipart(&path, id).await {
                        tracing::debug!(error = %err, "multipart upload already gone");
                    }
                }
                let owned: Vec<ObjectPath> = match store
                    .list(Some(&Self::s3_path(prefix, "uploads")))
                    .map_ok(|meta| meta.location)
                    .try_collect::<Vec<_>>()
                    .await
                {
                    Ok(all) => all
                        .into_iter()
                        .filter(|p| p.filename().is_some_and(|name| upload_key_of(name) == upload.key))
                        .collect(),
                    Err(err) => {
                        tracing::warn!(error = %err, "could not list the objects of an upload");
                        return;
                    }
                };
                for location in owned {
                    if let Err(err) = store.delete(&location).await {
                        tracing::warn!(error = %err, "could not remove an object of an upload");
                    }
                }
            }
        }
    }

    /// Removes partial upload data that none of `keep` owns; returns how many items.
    pub async fn clean_uploads(&self, keep: &std::collections::HashSet<String>) -> anyhow::Result<usize> {
        let mut removed = 0;
        match self {
            Storage::Local { root } => {
                let mut entries = tokio::fs::read_dir(root.join("uploads"))
                    .await
                    .context("listing partial uploads")?;
                while let Some(entry) = entries.next_entry().await.context("listing partial uploads")? {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !keep.contains(upload_key_of(&name)) {
                        tokio::fs::remove_file(entry.path())
                            .await
                            .context("removing a partial upload")?;
                        removed += 1;
                    }
                }
            }
            Storage::S3 { store, prefix } => {
                let stale: Vec<ObjectPath> = store
                    .list(Some(&Self::s3_path(prefix, "uploads")))
                    .map_ok(|meta| meta.location)
                    .try_filter(|p| {
                        let owned = p.filename().is_some_and(|name| keep.contains(upload_key_of(name)));
                        futures_util::future::ready(!owned)
                    })
                    .try_collect()
                    .await
                    .context("listing partial uploads")?;
                for location in &stale {
                    store.delete(location).await.context("removing a partial upload")?;
                }
                removed = stale.len();
            }
        }
        Ok(removed)
    }
}

fn hash_reader(mut file: std::fs::File, size: u64) -> Result<String, StorageError> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut seen = 0u64;
    while seen < size {
        let want = usize::try_from((size - seen).min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
        let read = file.read(&mut buffer[..want]).context("reading a partial upload")?;
        if read == 0 {
            return Err(StorageError::Lost);
        }
        hasher.update(&buffer[..read]);
        seen += read as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}
