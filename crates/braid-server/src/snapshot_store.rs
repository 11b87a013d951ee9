//! Where the server keeps snapshots: its snapshots directory, or an object store (S3,
//! Google Cloud Storage, Azure Blob Storage, or a `file://` location) through the
//! `object_store` crate.
//!
//! With an object store, a snapshot is written into the snapshots directory as always
//! (the facade writes files), uploaded in parts with its `.checksum` beside it, and
//! removed locally once the upload finished; lists, downloads and deletes go to the
//! store; a recovery from a location inside the store downloads the file into the
//! snapshots directory's `.downloads/`, recovers it and removes it. Object keys mirror
//! the directory: `<root>/<collection>/<name>` per collection, `<root>/<name>` for
//! full snapshots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use braid::{Database, SnapshotDescription};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::error::{ApiError, ErrorKind};

/// Bytes per uploaded part (S3 wants at least 5 MiB for all but the last).
const PART: usize = 8 << 20;

/// The snapshots of a server: a directory, and an object store when configured.
#[derive(Debug)]
pub struct SnapshotStore {
    local: PathBuf,
    remote: Option<Remote>,
}

#[derive(Debug)]
struct Remote {
    store: Arc<dyn ObjectStore>,
    root: Key,
    /// The configured URL, without a trailing `/`: recovery locations starting with it
    /// are read from the store.
    url: String,
}

/// A snapshot's bytes for a download.
pub(crate) enum Download {
    /// A file of the snapshots directory.
    File(PathBuf),
    /// An object's bytes as they arrive, and their number.
    Stream(BoxStream<'static, Result<bytes::Bytes, object_store::Error>>, u64),
}

/// A snapshot fetched from the store for a recovery: removed when dropped.
#[derive(Debug)]
pub struct Fetched(PathBuf);

impl Fetched {
    /// Where the downloaded file is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn store_error(e: object_store::Error) -> ApiError {
    match e {
        object_store::Error::NotFound { path, .. } => ApiError {
            kind: ErrorKind::NotFound,
            message: format!("Not found: {path} is not in the snapshot store"),
        },
        other => ApiError { kind: ErrorKind::Internal, message: format!("snapshot store: {other}") },
    }
}

fn io_error(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::from(braid::Error::from(braid::storage::StorageError::io(path, &e)))
}

fn not_found(name: &str) -> ApiError {
    ApiError { kind: ErrorKind::NotFound, message: format!("Not found: Snapshot {name} not found") }
}

/// Runs `f` to completion from synchronous code: on the server's runtime when called
/// from one of its blocking threads, else on a runtime of its own (the CLI).
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ApiError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(f)),
        Err(_) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| ApiError {
                    kind: ErrorKind::Internal,
                    message: format!("starting an I/O runtime: {e}"),
                })?;
            Ok(runtime.block_on(f))
        }
    }
}

impl SnapshotStore {
    /// Snapshots in directory `local` only.
    pub fn local(local: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { local: local.into(), remote: None }
    }

    /// Snapshots in the object store at `url` (`s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix`, `file:///absolute/path`), staged
    /// in `local`. Credentials and settings come from the environment as the
    /// `object_store` builders read them (`AWS_ACCESS_KEY_ID`, `AWS_REGION`,
    /// `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …).
    pub fn object_store(local: impl Into<PathBuf>, url: &str) -> Result<SnapshotStore, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("snapshot store `{url}`: {e}"))?;
        let settings = std::env::vars()
            .filter(|(k, _)| ["AWS_", "GOOGLE_", "AZURE_", "OBJECT_STORE_"].iter().any(|p| k.starts_with(p)));
        let (store, root) = object_store::parse_url_opts(&parsed, settings)
            .map_err(|e| format!("snapshot store `{url}`: {e}"))?;
        if parsed.scheme() == "file" {
            // The local backend wants its directory to exist.
            std::fs::create_dir_all(parsed.path()).map_err(|e| format!("snapshot store `{url}`: {e}"))?;
        }
        let remote = Remote { store: Arc::from(store), root, url: url.trim_end_matches('/').to_string() };
        Ok(SnapshotStore { local: local.into(), remote: Some(remote) })
    }

    /// The snapshots directory (where files are written, staged and uploaded to).
    pub fn dir(&self) -> &Path {
        &self.local
    }

    /// The object store's URL, when one is configured.
    pub fn url(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.url.as_str())
    }

    /// The directory of `collection`'s snapshots (full snapshots: `None`).
    fn local_dir(&self, collection: Option<&str>) -> PathBuf {
        collection.map_or_else(|| self.local.clone(), |c| self.local.join(c))
    }

    fn key(root: &Key, collection: Option<&str>, name: &str) -> Key {
        let mut parts: Vec<object_store::path::PathPart<'_>> = root.parts().collect();
        if let Some(c) = collection {
            parts.push(c.into());
        }
        parts.push(name.into());
        Key::from_iter(parts)
    }

    fn prefix(root: &Key, collection: Option<&str>) -> Key {
        match collection {
            Some(c) => root.parts().chain(std::iter::once(c.into())).collect(),
            None => root.clone(),
        }
    }

    /// Writes a snapshot of `collection` (of the whole database for `None`; an
    /// incremental one on `base`) and, with a store, uploads it. `collection` is a
    /// collection's own name (not an alias).
    pub fn create(
        &self,
        db: &Database,
        collection: Option<&str>,
        base: Option<&str>,
    ) -> Result<SnapshotDescription, ApiError> {
        let dir = self.local_dir(collection);
        if base.is_some() && self.remote.is_some() {
            return Err(ApiError::bad_request(
                "incremental snapshots need their base beside them in the snapshots directory; \
                 with a snapshot store, take full snapshots"
                    .into(),
            ));
        }
        let d = match (collection, base) {
            (Some(c), Some(base)) => db.snapshot_collection_incremental(c, &dir, base)?,
            (Some(c), None) => db.snapshot_collection(c, &dir)?,
            (None, _) => db.snapshot(&dir)?,
        };
        let Some(remote) = &self.remote else { return Ok(d) };
        // Names carry the time to the second, and the local copies of earlier ones are
        // gone: a name the store holds already gets a number, as in the directory.
        let d = match block_on(remote.unique(&dir, collection, &d.name))? {
            Ok(name) if name == d.name => d,
            Ok(name) => {
                let renamed = SnapshotDescription { name, ..d.clone() };
                let moved = std::fs::rename(dir.join(&d.name), dir.join(&renamed.name)).and_then(|()| {
                    std::fs::rename(
                        dir.join(format!("{}.checksum", d.name)),
                        dir.join(format!("{}.checksum", renamed.name)),
                    )
                });
                if let Err(e) = moved {
                    let _ = braid::snapshot::delete(&dir, &d.name);
                    return Err(io_error(&dir, e));
                }
                renamed
            }
            Err(e) => {
                let _ = braid::snapshot::delete(&dir, &d.name);
                return Err(e);
            }
        };
        let path = dir.join(&d.name);
        let uploaded = block_on(remote.upload(&path, collection, &d));
        // The local copy goes either way: a failed upload is reported, not kept aside.
        let _ = braid::snapshot::delete(&dir, &d.name);
        uploaded??;
        Ok(d)
    }

    /// The snapshots of `collection` (full snapshots: `None`), oldest first.
    pub fn list(&self, collection: Option<&str>) -> Result<Vec<SnapshotDescription>, ApiError> {
        match &self.remote {
            None => Ok(braid::snapshot::list(&self.local_dir(collection))?),
            Some(remote) => block_on(remote.list(collection))?,
        }
    }

    /// Deletes snapshot `name` of `collection` (full snapshots: `None`); 404 if none.
    pub fn delete(&self, collection: Option<&str>, name: &str) -> Result<(), ApiError> {
        if !braid::snapshot::valid_name(name) {
            return Err(not_found(name));
        }
        match &self.remote {
            None => {
                if braid::snapshot::delete(&self.local_dir(collection), name)? {
                    Ok(())
                } else {
                    Err(not_found(name))
                }
            }
            Some(remote) => block_on(remote.delete(collection, name))?,
        }
    }

    /// Snapshot `name`'s bytes for a download; 404 if there is none.
    pub(crate) async fn download(&self, collection: Option<&str>, name: &str) -> Result<Download, ApiError> {
        if !braid::snapshot::valid_name(name) {
            return Err(not_found(name));
        }
        match &self.remote {
            None => {
                let path = self.local_dir(collection).join(name);
                if path.is_file() { Ok(Download::File(path)) } else { Err(not_found(name)) }
            }
            Some(remote) => {
                let key = Self::key(&remote.root, collection, name);
                let got = remote.store.get(&key).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => not_found(name),
                    other => store_error(other),
                })?;
                let size = got.meta.size;
                Ok(Download::Stream(got.into_stream(), size))
            }
        }
    }

    /// When `location` names an object of the store (it starts with the store's URL),
    /// downloads it into the snapshots directory for a recovery. `None`: not the
    /// store's.
    pub fn fetch(&self, location: &str) -> Result<Option<Fetched>, ApiError> {
        let Some(remote) = &self.remote else { return Ok(None) };
        let Some(rest) = location.strip_prefix(&remote.url).and_then(|r| r.strip_prefix('/')) else {
            return Ok(None);
        };
        let mut parts: Vec<object_store::path::PathPart<'_>> = remote.root.parts().collect();
        for part in rest.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(ApiError::bad_request(format!("location `{location}` is not a snapshot's")));
            }
            parts.push(part.into());
        }
        let key = Key::from_iter(parts);
        let dir = self.local.join(".downloads");
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let fetched =
            Fetched(dir.join(format!("fetch-{}-{}.snapshot", std::process::id(), stamp.as_nanos())));
        block_on(remote.fetch(&key, fetched.path()))??;
        Ok(Some(fetched))
    }
}

impl Remote {
    /// `name`, or `name` with `-2`, `-3`… before its extension: the first that neither
    /// the store nor `dir` holds.
    async fn unique(&self, dir: &Path, collection: Option<&str>, name: &str) -> Result<String, ApiError> {
        let stem = name.strip_suffix(".snapshot").unwrap_or(name);
        let mut n = 1u64;
        loop {
            let candidate = if n == 1 { name.to_string() } else { format!("{stem}-{n}.snapshot") };
            n += 1;
            if n > 2 && dir.join(&candidate).exists() {
                continue;
            }
            match self.store.head(&SnapshotStore::key(&self.root, collection, &candidate)).await {
                Err(object_store::Error::NotFound { .. }) => return Ok(candidate),
                Ok(_) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    async fn upload(
        &self,
        path: &Path,
        collection: Option<&str>,
        d: &SnapshotDescription,
    ) -> Result<(), ApiError> {
        let key = SnapshotStore::key(&self.root, collection, &d.name);
        let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let upload = self.store.put_multipart(&key).await.map_err(store_error)?;
        let mut out = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; PART];
        let written: Result<(), ApiError> = async {
            loop {
                let n = file.read(&mut buf).map_err(|e| io_error(path, e))?;
                if n == 0 {
                    return Ok(());
                }
                out.wait_for_capacity(2).await.map_err(store_error)?;
                out.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = written {
            let _ = out.abort().await;
            return Err(e);
        }
        out.finish().await.map_err(store_error)?;
        if let Some(sum) = &d.checksum {
            let key = SnapshotStore::key(&self.root, collection, &format!("{}.checksum", d.name));
            self.store.put(&key, sum.clone().into_bytes().into()).await.map_err(store_error)?;
        }
        Ok(())
    }

    async fn list(&self, collection: Option<&str>) -> Result<Vec<SnapshotDescription>, ApiError> {
        let prefix = SnapshotStore::prefix(&self.root, collection);
        let listed = self.store.list_with_delimiter(Some(&prefix)).await.map_err(store_error)?;
        let mut out = Vec::new();
        for meta in listed.objects {
            let Some(name) = meta.location.filename().map(str::to_string) else { continue };
            if !braid::snapshot::valid_name(&name) {
                continue;
            }
            let sum_key = SnapshotStore::key(&self.root, collection, &format!("{name}.checksum"));
            let checksum = match self.store.get(&sum_key).await {
                Ok(got) => {
                    let bytes = got.bytes().await.map_err(store_error)?;
                    Some(String::from_utf8_lossy(&bytes).trim().to_string())
                }
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(store_error(e)),
            };
            out.push(SnapshotDescription {
                name,
                created: meta.last_modified.into(),
                size: meta.size,
                checksum,
            });
        }
        out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        Ok(out)
    }

    async fn delete(&self, collection: Option<&str>, name: &str) -> Result<(), ApiError> {
        let key = SnapshotStore::key(&self.root, collection, name);
        match self.store.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Err(not_found(name)),
            Err(e) => return Err(store_error(e)),
        }
        self.store.delete(&key).await.map_err(store_error)?;
        let sum = SnapshotStore::key(&self.root, collection, &format!("{name}.checksum"));
        match self.store.delete(&sum).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn fetch(&self, key: &Key, to: &Path) -> Result<(), ApiError> {
        use std::io::Write;
        let got = self.store.get(key).await.map_err(store_error)?;
        let mut file = std::fs::File::create(to).map_err(|e| io_error(to, e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.map_err(store_error)?).map_err(|e| io_error(to, e))?;
        }
        file.sync_all().map_err(|e| io_error(to, e))
    }
}
