//! Writing a whole file: to a temporary file (or object) while it is counted and
//! hashed, then checked and put in place under its SHA-256, so that a reader sees
//! the whole file or none.

use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::Stream;
use object_store::aws::AmazonS3;
use object_store::{ObjectStore, WriteMultipart};
use tokio::io::AsyncWriteExt;

use super::intake::{check_expected, Arrival, Intake, OverLimit};
use super::{object_key, Storage, StorageError, StoredObject, READ_CHUNK, S3_PART};

/// Removes a file that may already be gone; other failures are logged.
pub(super) async fn remove_if_present(path: &Path, what: &str) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(error = %err, "could not remove {what}"),
    }
}

/// Checks a complete local file against `expected` and puts it in place under its
/// hash. Rename is atomic: readers see the whole file or none.
pub(super) async fn publish_local(
    root: &Path,
    from: &Path,
    sha256: &str,
    expected: Option<&str>,
) -> Result<(), StorageError> {
    check_expected(expected, sha256)?;
    let target = root.join(object_key(sha256));
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .context("creating a storage folder")?;
    }
    tokio::fs::rename(from, &target)
        .await
        .context("publishing a stored file")?;
    Ok(())
}

pub(super) async fn put_local<S, E>(
    root: &Path,
    mut body: S,
    expected: Option<&str>,
    limit: u64,
) -> Result<StoredObject, StorageError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let tmp = root.join("tmp").join(uuid::Uuid::now_v7().to_string());
    let result = async {
        let file = tokio::fs::File::create(&tmp)
            .await
            .context("creating a temporary file")?;
        let mut writer = tokio::io::BufWriter::with_capacity(READ_CHUNK, file);
        let mut intake = Intake::new(0, limit, true);
        loop {
            match intake.next(&mut body).await {
                Ok(Arrival::Chunk(chunk)) => writer.write_all(&chunk).await.context("writing a temporary file")?,
                Ok(Arrival::End) => break,
                Ok(Arrival::Broken(reason)) => return Err(StorageError::Interrupted(reason)),
                Err(OverLimit) => return Err(StorageError::TooLarge { limit }),
            }
        }
        writer.flush().await.context("writing a temporary file")?;
        writer.get_ref().sync_all().await.context("syncing a temporary file")?;
        let size = intake.received;
        let sha256 = intake.sha256().context("hashing a temporary file")?;
        publish_local(root, &tmp, &sha256, expected).await?;
        Ok(StoredObject { sha256, size })
    }
    .await;
    if result.is_err() {
        remove_if_present(&tmp, "a temporary upload file").await;
    }
    result
}

pub(super) async fn put_s3<S, E>(
    store: &Arc<AmazonS3>,
    prefix: &str,
    mut body: S,
    expected: Option<&str>,
    limit: u64,
) -> Result<StoredObject, StorageError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let tmp = Storage::s3_path(prefix, &format!("tmp/{}", uuid::Uuid::now_v7()));
    let upload = store.put_multipart(&tmp).await.context("starting an upload")?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, S3_PART);
    let mut intake = Intake::new(0, limit, true);
    let streamed: Result<(), StorageError> = async {
        loop {
            match intake.next(&mut body).await {
                Ok(Arrival::Chunk(chunk)) => {
                    writer.wait_for_capacity(4).await.context("uploading a part")?;
                    writer.write(&chunk);
                }
                Ok(Arrival::End) => return Ok(()),
                Ok(Arrival::Broken(reason)) => return Err(StorageError::Interrupted(reason)),
                Err(OverLimit) => return Err(StorageError::TooLarge { limit }),
            }
        }
    }
    .await;
    if let Err(err) = streamed {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(error = %abort, "could not abort an interrupted upload");
        }
        return Err(err);
    }
    writer.finish().await.context("completing an upload")?;
    let size = intake.received;
    let sha256 = intake.sha256().context("hashing an upload")?;
    let outcome = async {
        check_expected(expected, &sha256)?;
        let target = Storage::s3_path(prefix, &object_key(&sha256));
        // The object appears under its final name only once it is complete.
        store.copy(&tmp, &target).await.context("publishing an object")?;
        Ok(StoredObject {
            sha256: sha256.clone(),
            size,
        })
    }
    .await;
    if let Err(err) = store.delete(&tmp).await {
        tracing::warn!(error = %err, "could not remove a temporary object");
    }
    outcome
}
