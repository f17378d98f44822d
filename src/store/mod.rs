//! Release stores: where release zips live.
//!
//! One small interface, two backends: a local directory and an S3 prefix.
//!
//! Besides reading, a store takes new releases (`publish`) and deletes old
//! ones (`prune`). A prune first moves a release to a hidden set-aside
//! place, where listing, checking and downloading no longer find it, and
//! deletes it from there only once no deploy turned out to use it; see
//! `crate::prune`.

mod localdir;
mod s3;

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use localdir::LocalDirStore;
use s3::S3Store;

use crate::config::BlobStoreLocation;
use crate::names::ReleaseName;

/// The hidden place, inside the store, where prune sets releases aside.
/// Listings leave it out.
pub(crate) const SET_ASIDE: &str = ".c2-pruned";

/// A release in a store, and when it was stored (if the store says).
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub name: ReleaseName,
    pub last_modified: Option<SystemTime>,
}

pub(crate) trait ReleaseStore {
    /// The releases, most recent first. A file whose name is not a
    /// release name (c2's own `.c2-…` names among them) is not a release.
    fn list_dated(&self) -> Result<Vec<Listed>>;
    /// The releases' names, most recent first.
    fn list(&self) -> Result<Vec<ReleaseName>> {
        Ok(self.list_dated()?.into_iter().map(|l| l.name).collect())
    }
    fn exists(&self, release: &ReleaseName) -> Result<bool>;
    /// Copies the release zip to `dest`, streaming.
    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()>;
    /// The store's location, for messages.
    fn describe(&self) -> String;
    /// Stores the file at `src` as `release`, all at once: nobody ever
    /// sees part of it. `Ok(false)` when `release` exists and `replace` is
    /// not set (nothing was written).
    fn upload(&self, release: &ReleaseName, src: &Path, replace: bool) -> Result<bool>;
    /// Moves `release` to the set-aside place; `Ok(false)` if it was not
    /// in the store.
    fn set_aside(&self, release: &ReleaseName) -> Result<bool>;
    /// The names in the set-aside place.
    fn set_aside_list(&self) -> Result<Vec<String>>;
    /// Moves `release` back from the set-aside place. A release published
    /// under the same name meanwhile is kept (localdir) and the set-aside
    /// copy dropped.
    fn restore(&self, release: &ReleaseName) -> Result<()>;
    /// Deletes `release` from the set-aside place.
    fn delete_set_aside(&self, release: &ReleaseName) -> Result<()>;
}

/// Opens the configured release store.
pub(crate) fn open(location: &BlobStoreLocation) -> Box<dyn ReleaseStore> {
    match location {
        BlobStoreLocation::Localdir(dir) => Box::new(LocalDirStore::new(dir)),
        BlobStoreLocation::S3(url) => Box::new(S3Store::new(url)),
    }
}
