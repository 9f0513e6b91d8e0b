//! [`LocalBlobStore`]: one file per blob under a root folder; a write goes to a temporary file in the same folder, is synced, then renamed into place.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use domain::ports::{Blob, BlobError, BlobKey, BlobStore};
use tokio::io::AsyncWriteExt;

/// Blobs as files under a root folder, at the path their key names.
///
/// A `put` writes a temporary file beside the target, syncs it to disk and renames it over the
/// target, so a reader sees the old blob or the new one whole, and a failed write (a full disk)
/// leaves nothing behind. The content type is not stored: it is derived from the key's extension
/// (`.png`, `.jpg`/`.jpeg`, `.webp`, ...), `application/octet-stream` for others, so keys should
/// end with the extension of their content.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// The prefix of temporary files; never a valid final name, as keys are written without it.
const TEMPORARY_PREFIX: &str = ".partial-";

impl LocalBlobStore {
    /// A store under `root`. Folders (the root included) are created by the first write into
    /// them, so a service that never receives a blob leaves no trace on disk.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`: the root joined with the key's segments (keys are validated relative
    /// paths without `..`, so this never leaves the root).
    #[must_use]
    pub fn path_of(&self, key: &BlobKey) -> PathBuf {
        key.segments()
            .fold(self.root.clone(), |path, segment| path.join(segment))
    }

    /// The media type of a key, from its extension.
    #[must_use]
    pub fn content_type_of(key: &BlobKey) -> &'static str {
        let extension = key
            .as_str()
            .rsplit_once('.')
            .map(|(_, extension)| extension)
            .unwrap_or_default();
        match extension {
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "webp" => "image/webp",
            "gif" => "image/gif",
            "txt" => "text/plain",
            "json" => "application/json",
            _ => "application/octet-stream",
        }
    }
}

/// A full disk or an exhausted quota is [`BlobError::Full`]; anything else is unavailable.
fn blob_error(error: &io::Error, doing: &str) -> BlobError {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
            BlobError::Full
        }
        _ if matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT)) => BlobError::Full,
        _ => BlobError::Unavailable(format!("{doing}: {error}")),
    }
}

async fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.flush().await?;
    file.sync_all().await
}

/// Makes a rename in `folder` durable. Best effort: not every platform can sync a folder.
async fn sync_folder(folder: &Path) {
    if let Ok(handle) = tokio::fs::File::open(folder).await {
        handle.sync_all().await.ok();
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8], _content_type: &str) -> Result<(), BlobError> {
        let target = self.path_of(key);
        let folder = target
            .parent()
            .map_or_else(|| self.root.clone(), Path::to_path_buf);
        tokio::fs::create_dir_all(&folder)
            .await
            .map_err(|error| blob_error(&error, "creating the blob's folder"))?;
        let temporary = folder.join(format!(
            "{TEMPORARY_PREFIX}{}",
            uuid::Uuid::new_v4().simple()
        ));
        let written = match write_synced(&temporary, bytes).await {
            Ok(()) => tokio::fs::rename(&temporary, &target).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tokio::fs::remove_file(&temporary).await.ok();
            return Err(blob_error(&error, "writing the blob"));
        }
        sync_folder(&folder).await;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(Some(Blob {
                bytes,
                content_type: Self::content_type_of(key).to_owned(),
            })),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(blob_error(&error, "reading the blob")),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(blob_error(&error, "deleting the blob")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_full_and_the_rest_unavailable() {
        assert!(matches!(
            blob_error(&io::Error::from_raw_os_error(28), "x"),
            BlobError::Full
        ));
        assert!(matches!(
            blob_error(&io::Error::from(ErrorKind::StorageFull), "x"),
            BlobError::Full
        ));
        assert!(matches!(
            blob_error(&io::Error::from(ErrorKind::QuotaExceeded), "x"),
            BlobError::Full
        ));
        assert!(matches!(
            blob_error(&io::Error::from(ErrorKind::PermissionDenied), "writing"),
            BlobError::Unavailable(message) if message.starts_with("writing: ")
        ));
    }

    #[test]
    fn content_types_come_from_extensions() {
        let key = |k: &str| BlobKey::parse(k).expect("a key");
        assert_eq!(
            LocalBlobStore::content_type_of(&key("a/b.png")),
            "image/png"
        );
        assert_eq!(
            LocalBlobStore::content_type_of(&key("a/b.jpg")),
            "image/jpeg"
        );
        assert_eq!(
            LocalBlobStore::content_type_of(&key("a/b.webp")),
            "image/webp"
        );
        assert_eq!(
            LocalBlobStore::content_type_of(&key("a/b")),
            "application/octet-stream"
        );
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_behind() {
        let root = std::env::temp_dir().join(format!("blobs-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalBlobStore::new(&root);
        let key = BlobKey::parse("m/one.png").expect("a key");
        // A folder where the file should go makes the rename fail.
        std::fs::create_dir_all(store.path_of(&key)).expect("a folder in the way");
        let error = store.put(&key, b"bytes", "image/png").await;
        assert!(matches!(error, Err(BlobError::Unavailable(_))), "{error:?}");
        let left: Vec<_> = std::fs::read_dir(root.join("m"))
            .expect("the folder")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("one.png")],
            "only the obstacle"
        );
        std::fs::remove_dir_all(&root).ok();
    }
}
