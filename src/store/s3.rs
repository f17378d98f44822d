//! A release store that is an S3 prefix.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use super::ReleaseStore;
use crate::aws::s3::{self, S3Url};
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
}

impl ReleaseStore for S3Store {
    fn list(&self) -> Result<Vec<String>> {
        let mut objects = s3::list(&self.prefix)?;
        objects.sort_by(|a, b| {
            let ta = a.last_modified.unwrap_or(SystemTime::UNIX_EPOCH);
            let tb = b.last_modified.unwrap_or(SystemTime::UNIX_EPOCH);
            tb.cmp(&ta).then_with(|| a.key.cmp(&b.key))
        });
        Ok(objects
            .into_iter()
            .filter_map(|o| o.key.rsplit('/').next().map(str::to_string))
            .filter(|name| !name.is_empty())
            .collect())
    }

    fn exists(&self, release: &ReleaseName) -> Result<bool> {
        s3::exists(&self.prefix.join(release.as_str()))
    }

    fn download(&self, release: &ReleaseName, dest: &Path) -> Result<()> {
        s3::download(
            &self.prefix.join(release.as_str()),
            dest,
            &format!("downloading {release}"),
        )
    }

    fn describe(&self) -> String {
        self.prefix.to_string()
    }
}
