//! Blob stores on a local folder: [`LocalBlobStore`] keeps each blob as one file, written atomically.

mod local;

pub use local::LocalBlobStore;
