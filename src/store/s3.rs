//! A release store that is an S3 prefix.
//!
//! Prune's set-aside place is `<prefix>/.c2-pruned/`, left out of listings.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use super::{Listed, ReleaseStore, SET_ASIDE};
use crate::aws::s3::{self, Precondition, S3Url};
use crate::names::ReleaseName;

pub(crate) struct S3Store {
    prefix: S3Url,
}

impl S3Store {
    pub(crate) fn new(prefix: &S3Url) -> S3Store {
        S3Store {
            prefix: prefix.clone(),
        }
    }

    /// `<prefix>/.c2-pruned/`.
    fn aside(&self) -> S3Url {
        self.prefix.join(&format!("{SET_ASIDE}/"))
    }

    fn url(&self, release: &ReleaseName) -> S3Url {
        self.prefix.join(release.as_str())
    }

    fn aside_url(&self, release: &ReleaseName) -> S3Url {
        self.aside().join(release.as_str())
    }
}

impl ReleaseStore for S3Store {
    /// The objects directly in the store's folder (not in subfolders such
    /// as the set-aside place).
    fn list_dated(&self) -> Result<Vec<Listed>> {
        let mut objects = s3::list_folder(&self.prefix)?;
        objects.sort_by(|a, b| {
            let ta = a.last_modified.unwrap_or(SystemTime::UNIX_EPOCH);
            let tb = b.last_modified.unwrap_or(SystemTime::UNIX_EPOCH);
            tb.cmp(&ta).then_with(|| a.key.cmp(&b.key))
        });
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                Some(Listed {
                    name: ReleaseName::parse(&o.key).ok()?,
                    last_modified: o.last_modified,
                })
            })
            .collect())
    }

    fn exists(&self, release: &ReleaseName) -> Result<bool> {
        s3::exists(&self.url(release))
    }

    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()> {
        s3::download(&self.url(release), dest, &format!("downloading {release}"))
    }

    fn describe(&self) -> String {
        self.prefix.to_string()
    }

    fn upload(&self, release: &ReleaseName, src: &Path, replace: bool) -> Result<bool> {
        let pre = if replace {
            Precondition::None
        } else {
            Precondition::Absent
        };
        s3::put_file(
            &self.url(release),
            src,
            release.packed_as().content_type(),
            &pre,
        )
    }

    fn set_aside(&self, release: &ReleaseName) -> Result<bool> {
        if !s3::copy(&self.url(release), &self.aside_url(release))? {
            return Ok(false);
        }
        s3::delete(&self.url(release))?;
        Ok(true)
    }

    fn set_aside_list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = s3::list_folder(&self.aside())?
            .into_iter()
            .map(|o| o.key)
            .collect();
        names.sort();
        Ok(names)
    }

    fn restore(&self, release: &ReleaseName) -> Result<()> {
        // Gone from the set-aside place: another prune restored or
        // deleted it.
        if s3::copy(&self.aside_url(release), &self.url(release))? {
            s3::delete(&self.aside_url(release))?;
        }
        Ok(())
    }

    fn delete_set_aside(&self, release: &ReleaseName) -> Result<()> {
        s3::delete(&self.aside_url(release))
    }
}
