//! Release stores (SPEC §1): where release zips live.
//!
//! One small interface, two backends: a local directory and an S3 prefix.
//! Remote state backends (SPEC §7) will sit beside these.

mod localdir;
mod s3;

use std::path::Path;

use anyhow::Result;

pub use localdir::LocalDirStore;
pub use s3::S3Store;

use crate::config::BlobStoreLocation;

pub trait ReleaseStore {
    /// Release names, most recent first.
    fn list(&self) -> Result<Vec<String>>;
    fn exists(&self, release: &str) -> Result<bool>;
    /// Copies the release zip to `dest`, streaming.
    fn download(&self, release: &str, dest: &Path) -> Result<()>;
    /// The store's location, for messages.
    fn describe(&self) -> String;
}

/// Opens the configured release store.
pub fn open(location: &BlobStoreLocation) -> Result<Box<dyn ReleaseStore>> {
    Ok(match location {
        BlobStoreLocation::Localdir(dir) => Box::new(LocalDirStore::new(dir)),
        BlobStoreLocation::S3(url) => Box::new(S3Store::new(url)?),
    })
}

/// Fails unless `release` is a plain file name: release names are blob
/// names, and a `/` or `..` would reach outside the store and the deploy dir.
pub fn check_release_name(release: &str) -> Result<()> {
    if release.is_empty()
        || release == "."
        || release == ".."
        || release.contains('/')
        || release.contains('\0')
    {
        anyhow::bail!(
            "invalid release name '{release}': expected a file name such as shop-1.4.zip"
        );
    }
    Ok(())
}
