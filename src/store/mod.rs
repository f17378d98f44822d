//! Release stores: where release zips live.
//!
//! One small interface, two backends: a local directory and an S3 prefix.

mod localdir;
mod s3;

use std::path::Path;

use anyhow::Result;

use localdir::LocalDirStore;
use s3::S3Store;

use crate::config::BlobStoreLocation;
use crate::names::ReleaseName;

pub(crate) trait ReleaseStore {
    /// Release names, most recent first.
    fn list(&self) -> Result<Vec<String>>;
    fn exists(&self, release: &ReleaseName) -> Result<bool>;
    /// Copies the release zip to `dest`, streaming.
    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()>;
    /// The store's location, for messages.
    fn describe(&self) -> String;
}

/// Opens the configured release store.
pub(crate) fn open(location: &BlobStoreLocation) -> Box<dyn ReleaseStore> {
    match location {
        BlobStoreLocation::Localdir(dir) => Box::new(LocalDirStore::new(dir)),
        BlobStoreLocation::S3(url) => Box::new(S3Store::new(url)),
    }
}
