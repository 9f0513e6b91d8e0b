//! The `BlobStore` contract, run against the local-folder store and the in-memory one: round trips, replacement, deletion, and failures that leave nothing behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapter_blobs::LocalBlobStore;
use adapter_memory::InMemoryBlobStore;
use domain::ports::{BlobError, BlobKey, BlobStore};

fn key(text: &str) -> BlobKey {
    BlobKey::parse(text).expect("a valid key")
}

/// A folder of its own, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("blob-contract-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Every file under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, folder: &Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, found);
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

async fn round_trip(store: Arc<dyn BlobStore>) {
    let png = key("markets/m1/upload.png");
    assert_eq!(store.get(&png).await.expect("get"), None);
    store.put(&png, b"first", "image/png").await.expect("put");
    let blob = store.get(&png).await.expect("get").expect("stored");
    assert_eq!(blob.bytes, b"first");
    assert_eq!(blob.content_type, "image/png");

    store
        .put(&png, b"second, longer", "image/png")
        .await
        .expect("replace");
    let blob = store.get(&png).await.expect("get").expect("stored");
    assert_eq!(blob.bytes, b"second, longer", "replaced whole");

    let jpeg = key("markets/m1/other.jpg");
    store
        .put(&jpeg, b"\xff\xd8\xff", "image/jpeg")
        .await
        .expect("put");
    assert_eq!(
        store.get(&jpeg).await.expect("get").map(|b| b.content_type),
        Some("image/jpeg".to_owned())
    );
    let empty = key("markets/m2/empty.webp");
    store
        .put(&empty, b"", "image/webp")
        .await
        .expect("an empty blob");
    assert_eq!(
        store.get(&empty).await.expect("get").map(|b| b.bytes),
        Some(Vec::new())
    );

    store.delete(&png).await.expect("delete");
    assert_eq!(store.get(&png).await.expect("get"), None);
    store
        .delete(&png)
        .await
        .expect("deleting a missing blob is fine");
    assert!(
        store.get(&jpeg).await.expect("get").is_some(),
        "others stay"
    );
}

async fn large_blobs_survive_whole(store: Arc<dyn BlobStore>) {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let key = key("markets/big/original.png");
    store.put(&key, &big, "image/png").await.expect("put");
    assert_eq!(
        store.get(&key).await.expect("get").expect("stored").bytes,
        big
    );
}

async fn concurrent_writers_of_one_key_leave_one_whole_blob(store: Arc<dyn BlobStore>) {
    let key = key("markets/race/image.png");
    let writers = (0..8u8).map(|i| {
        let store = Arc::clone(&store);
        let key = key.clone();
        tokio::spawn(async move {
            let body = vec![i; 100_000];
            store.put(&key, &body, "image/png").await
        })
    });
    for writer in writers {
        writer.await.expect("joined").expect("put");
    }
    let bytes = store.get(&key).await.expect("get").expect("stored").bytes;
    assert_eq!(bytes.len(), 100_000);
    assert!(
        bytes.iter().all(|b| *b == bytes[0]),
        "one writer's bytes, whole"
    );
}

macro_rules! blob_store_tests {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let folder = super::Folder::new();
                    let store = super::LocalBlobStore::new(&folder.0);
                    super::$test(std::sync::Arc::new(store)).await;
                    let left = super::files_under(&folder.0);
                    assert!(
                        left.iter().all(|file| !file.contains(".partial-")),
                        "no temporary file is left: {left:?}"
                    );
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(std::sync::Arc::new(super::InMemoryBlobStore::new())).await;
                }
            )*
        }
    };
}

blob_store_tests!(
    round_trip,
    large_blobs_survive_whole,
    concurrent_writers_of_one_key_leave_one_whole_blob,
);

#[tokio::test]
async fn local_blobs_are_plain_files_at_their_keys() {
    let folder = Folder::new();
    let store = LocalBlobStore::new(&folder.0);
    assert!(!folder.0.exists(), "nothing on disk before the first write");
    store
        .put(&key("markets/m/a.png"), b"png bytes", "image/png")
        .await
        .expect("put");
    assert_eq!(files_under(&folder.0), vec!["markets/m/a.png".to_owned()]);
    assert_eq!(
        std::fs::read(folder.0.join("markets/m/a.png")).expect("the file"),
        b"png bytes"
    );
}

#[tokio::test]
async fn a_local_store_that_cannot_write_stores_nothing() {
    let folder = Folder::new();
    let store = LocalBlobStore::new(&folder.0);
    std::fs::create_dir_all(&folder.0).expect("the root");
    // A file where a folder of the key should be: the write cannot happen.
    std::fs::write(folder.0.join("markets"), b"in the way").expect("an obstacle");
    let error = store
        .put(&key("markets/m/a.png"), b"bytes", "image/png")
        .await
        .expect_err("the write fails");
    assert!(matches!(error, BlobError::Unavailable(_)), "{error:?}");
    assert_eq!(files_under(&folder.0), vec!["markets".to_owned()]);
}

#[tokio::test]
async fn a_full_in_memory_store_says_so_and_stores_nothing() {
    let store = InMemoryBlobStore::new();
    let key = key("markets/m/a.png");
    store.set_full(true);
    let error = store
        .put(&key, b"bytes", "image/png")
        .await
        .expect_err("full");
    assert!(matches!(error, BlobError::Full), "{error:?}");
    assert_eq!(error.to_string(), "the blob storage is full");
    assert!(store.keys().is_empty());
    assert_eq!(store.get(&key).await.expect("reads still work"), None);
    store.set_full(false);
    store
        .put(&key, b"bytes", "image/png")
        .await
        .expect("space again");
    store.set_unavailable(true);
    assert!(matches!(
        store.get(&key).await,
        Err(BlobError::Unavailable(_))
    ));
}
