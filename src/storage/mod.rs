//! Patch file storage behind one interface: a local directory (the default, for one
//! instance) or S3-compatible object storage (for several). Files are stored under
//! their SHA-256. A write streams into a temporary object while hashing, is checked
//! against the expected hash and the size limit, and only then is published under
//! its hash: a crash never leaves a partial file where a reader could find it, and
//! leftovers of interrupted writes are removed at start. Resumable uploads keep their
//! partial data apart, in `partial`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::config::S3Config;

mod intake;
mod inventory;
mod partial;
mod write;

use intake::{check_expected, Arrival, Intake, OverLimit};
pub use inventory::StoredFile;
pub use partial::{Appended, PartialUpload};
use write::{publish_local, put_local, put_s3, remove_if_present};

/// A stream of file bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub sha256: String,
    pub size: u64,
}

/// Why a write was refused or failed. Nothing is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file's SHA-256 is {actual}, not the expected {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("the body runs past the upload's declared size of {size} bytes")]
    BeyondSize { size: u64 },
    #[error("the data of this upload is no longer stored; start a new upload")]
    Lost,
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// Buffer size for writing and hashing local files.
const READ_CHUNK: usize = 512 * 1024;
/// Chunk size of downloads from local files: large enough to keep the per-chunk cost
/// low, small enough that a chunk is still in the CPU cache when it is copied out.
const SEND_CHUNK: usize = 256 * 1024;
/// What the chunks of all downloads in flight share: with many at once (a fleet
/// fetching an emergency fix) each reads smaller chunks, so the server's memory
/// stays flat in the number of downloads (32 downloads still read whole 256 KiB
/// chunks; a thousand read 8 KiB each, so a connection's write buffer, which takes
/// chunks until it holds 8 KiB, stays under 16 KiB).
const SEND_BUDGET: usize = 8 * 1024 * 1024;
/// The smallest chunk, however many downloads share the budget.
const MIN_SEND_CHUNK: usize = 8 * 1024;
/// Downloads from local files in flight in this process.
static SENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One download in flight, counted while it lives.
struct Sending;

impl Sending {
    fn start() -> Sending {
        SENDING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Sending
    }

    /// This download's share of the budget.
    fn chunk(&self) -> usize {
        let sending = SENDING.load(std::sync::atomic::Ordering::Relaxed).max(1);
        (SEND_BUDGET / sending).clamp(MIN_SEND_CHUNK, SEND_CHUNK)
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        SENDING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
/// Part size of S3 multipart uploads.
const S3_PART: usize = 8 * 1024 * 1024;
/// Temporary S3 objects older than this are leftovers of interrupted uploads.
const S3_LEFTOVER_AGE: Duration = Duration::from_secs(3600);

pub enum Storage {
    Local { root: PathBuf },
    S3 { store: Arc<AmazonS3>, prefix: String },
}

fn object_key(sha256: &str) -> String {
    format!("sha256/{}/{}", &sha256[..2], sha256)
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Storage {
    /// Local files under `dir`, or the S3 bucket when one is configured.
    pub fn open(dir: &Path, s3: Option<&S3Config>) -> anyhow::Result<Storage> {
        match s3 {
            None => {
                let root = dir.to_path_buf();
                std::fs::create_dir_all(root.join("tmp")).with_context(|| format!("creating {}", root.display()))?;
                std::fs::create_dir_all(root.join("sha256")).with_context(|| format!("creating {}", root.display()))?;
                std::fs::create_dir_all(root.join("uploads"))
                    .with_context(|| format!("creating {}", root.display()))?;
                Ok(Storage::Local { root })
            }
            Some(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(s3.secret_access_key.expose());
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                        .with_allow_http(endpoint.scheme() == "http")
                        .with_virtual_hosted_style_request(false);
                }
                let store = builder.build().context("configuring the S3 client")?;
                Ok(Storage::S3 {
                    store: Arc::new(store),
                    prefix: s3.prefix.clone(),
                })
            }
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Storage::Local { .. } => "local",
            Storage::S3 { .. } => "s3",
        }
    }

    fn s3_path(prefix: &str, key: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", prefix.trim_matches('/')))
        }
    }

    /// The path of a stored file below the storage root, for a front server that
    /// serves the root itself; `None` for object storage.
    pub fn local_key(&self, sha256: &str) -> Option<String> {
        match self {
            Storage::Local { .. } if is_sha256(sha256) => Some(object_key(sha256)),
            _ => None,
        }
    }

    /// Writes `body` and publishes it under its SHA-256, if it stays within `limit`
    /// bytes and matches `expected` (when given).
    pub async fn put<S, E>(&self, body: S, expected: Option<&str>, limit: u64) -> Result<StoredObject, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match self {
            Storage::Local { root } => put_local(root, body, expected, limit).await,
            Storage::S3 { store, prefix } => put_s3(store, prefix, body, expected, limit).await,
        }
    }

    /// Streams bytes `start..=end` of the stored file.
    pub async fn read(&self, sha256: &str, start: u64, end: u64) -> Result<ByteStream, StorageError> {
        if !is_sha256(sha256) || end < start {
            return Err(StorageError::Backend(anyhow::anyhow!("bad object reference")));
        }
        match self {
            Storage::Local { root } => {
                // Opened here, like the chunks are read: no hand-over to another thread.
                let file = std::fs::File::open(root.join(object_key(sha256))).context("opening a stored file")?;
                Ok(Box::pin(FileChunks {
                    file,
                    offset: start,
                    remaining: end - start + 1,
                    sending: Sending::start(),
                }))
            }
            Storage::S3 { store, prefix } => {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(start..end + 1)),
                    ..GetOptions::default()
                };
                let result = store
                    .get_opts(&Self::s3_path(prefix, &object_key(sha256)), options)
                    .await
                    .context("reading an object")?;
                Ok(Box::pin(result.into_stream().map_err(io::Error::other)))
            }
        }
    }

    /// A blocking reader over the whole stored file, for signing.
    pub async fn reader(&self, sha256: &str, size: u64) -> Result<Box<dyn io::Read + Send>, StorageError> {
        match self {
            Storage::Local { root } => {
                let file = std::fs::File::open(root.join(object_key(sha256))).context("opening a stored file")?;
                Ok(Box::new(io::BufReader::with_capacity(READ_CHUNK, file)))
            }
            Storage::S3 { .. } => {
                let stream = self.read(sha256, 0, size.saturating_sub(1)).await?;
                let reader = tokio_util::io::StreamReader::new(stream);
                Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
            }
        }
    }

    /// Removes what interrupted writes left behind; returns how many.
    pub async fn clean_leftovers(&self) -> anyhow::Result<usize> {
        match self {
            Storage::Local { root } => {
                let mut removed = 0;
                let mut entries = tokio::fs::read_dir(root.join("tmp"))
                    .await
                    .context("listing temporary files")?;
                while let Some(entry) = entries.next_entry().await.context("listing temporary files")? {
                    tokio::fs::remove_file(entry.path())
                        .await
                        .context("removing a temporary file")?;
                    removed += 1;
                }
                Ok(removed)
            }
            Storage::S3 { store, prefix } => {
                let cutoff = chrono::Utc::now() - chrono::TimeDelta::from_std(S3_LEFTOVER_AGE).unwrap_or_default();
                let tmp = Self::s3_path(prefix, "tmp");
                let stale: Vec<ObjectPath> = store
                    .list(Some(&tmp))
                    .try_filter(|meta| futures_util::future::ready(meta.last_modified < cutoff))
                    .map_ok(|meta| meta.location)
                    .try_collect()
                    .await
                    .context("listing temporary objects")?;
                for location in &stale {
                    store.delete(location).await.context("removing a temporary object")?;
                }
                Ok(stale.len())
            }
        }
    }
}

/// `remaining` bytes of a stored file from `offset`, each chunk read when the socket
/// is ready for it, on the thread that serves the connection. Patch files are read
/// over and over while an advisory is fresh, so they sit in the page cache, where a
/// read costs less than handing the chunk over from another thread (nginx without
/// `aio` reads the same way); one chunk at a time per connection, its size this
/// download's share of [`SEND_BUDGET`], keeps memory flat in the file's size and in
/// the number of downloads.
struct FileChunks {
    file: std::fs::File,
    offset: u64,
    remaining: u64,
    sending: Sending,
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::os::unix::fs::FileExt;
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let most = self.sending.chunk();
        let size = usize::try_from(self.remaining.min(most as u64)).unwrap_or(most);
        let mut chunk = vec![0u8; size];
        match self.file.read_exact_at(&mut chunk, self.offset) {
            Ok(()) => {
                self.offset += size as u64;
                self.remaining -= size as u64;
                std::task::Poll::Ready(Some(Ok(Bytes::from(chunk))))
            }
            Err(err) => {
                self.remaining = 0;
                std::task::Poll::Ready(Some(Err(err)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    async fn read_all(storage: &Storage, sha: &str, start: u64, end: u64) -> Vec<u8> {
        let stream = storage.read(sha, start, end).await.unwrap();
        stream
            .try_fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                Ok(acc)
            })
            .await
            .unwrap()
    }

    #[test]
    fn downloads_in_flight_share_one_budget_of_chunks() {
        // Other tests of this process may be downloading too: they only add.
        let many: Vec<Sending> = (0..SEND_BUDGET / MIN_SEND_CHUNK).map(|_| Sending::start()).collect();
        assert_eq!(many[0].chunk(), MIN_SEND_CHUNK);
        drop(many);
        assert!(
            Sending::start().chunk() > MIN_SEND_CHUNK,
            "the chunks grow back once they finish"
        );
    }

    #[actix_web::test]
    async fn local_put_hashes_publishes_and_reads_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), None).unwrap();
        let stored = storage.put(chunks(&[b"hello ", b"world"]), None, 1024).await.unwrap();
        assert_eq!(stored.size, 11);
        assert_eq!(stored.sha256, crate::secrets::sha256_hex(b"hello world"));
        assert_eq!(read_all(&storage, &stored.sha256, 0, 10).await, b"hello world");
        assert_eq!(read_all(&storage, &stored.sha256, 6, 10).await, b"world");
    }

    #[actix_web::test]
    async fn refused_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), None).unwrap();
        let too_large = storage.put(chunks(&[b"0123456789", b"0123456789"]), None, 15).await;
        assert!(matches!(too_large, Err(StorageError::TooLarge { limit: 15 })));
        let wrong = storage.put(chunks(&[b"data"]), Some(&"a".repeat(64)), 1024).await;
        assert!(matches!(wrong, Err(StorageError::HashMismatch { .. })));
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(io::Error::other("connection reset")),
        ]);
        assert!(matches!(
            storage.put(broken, None, 1024).await,
            Err(StorageError::Interrupted(_))
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "a temporary file was left"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("sha256")).unwrap().count(),
            0,
            "a refused file was published"
        );
    }

    #[actix_web::test]
    async fn leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), None).unwrap();
        std::fs::write(dir.path().join("tmp/partial"), b"half a file").unwrap();
        assert_eq!(storage.clean_leftovers().await.unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
