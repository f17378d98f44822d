//! A release store that is an S3 prefix.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

use super::{check_release_name, ReleaseStore};
use crate::aws::s3::{self, S3Url};

pub struct S3Store {
    prefix: S3Url,
}

impl S3Store {
    pub fn new(url: &str) -> Result<S3Store> {
        Ok(S3Store {
            prefix: S3Url::parse(url)?,
        })
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

    fn exists(&self, release: &str) -> Result<bool> {
        check_release_name(release)?;
        s3::exists(&self.prefix.join(release))
    }

    fn download(&self, release: &str, dest: &Path) -> Result<()> {
        check_release_name(release)?;
        s3::download(&self.prefix.join(release), dest)
    }

    fn describe(&self) -> String {
        self.prefix.to_string()
    }
}
