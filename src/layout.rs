//! What lives where under deploysDir. Every path c2 derives from it comes
//! from here, so the layout operators' scripts rely on is in one place.
//!
//! ```text
//! <deploysDir>/
//!   <label>/              a deploy (unpacked release)
//!     .c2-deploy          c2's mark: it created this directory (and in
//!                         which mode), so it may remove it as a leftover
//!     .c2-release         the release it was made from (C2_RELEASE)
//!     .c2-tag             the tag of the processes its commands start
//!                         (c2's own names: no release may hold a file
//!                         named `.c2-…` at its top)
//!   current -> <label>    noproxy: the live release
//!   .c2.lock              serialises c2 runs on this machine
//!   frontend-proxy/       proxy mode: state.json, nginx.conf, nginx.ctx.json,
//!                         docker-compose.yml or nginx.pid and error.log,
//!                         health.json (the health watch's bookkeeping);
//!                         noproxy: noproxy.json (the previous release);
//!                         every mode without remote state: lock.json (the
//!                         operators' deploy lock) and history.jsonl
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::fsutil;
use crate::names::DeployLabel;

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(deploys_dir: &Path) -> Layout {
        Layout {
            root: deploys_dir.to_path_buf(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn deploy_dir(&self, label: &DeployLabel) -> PathBuf {
        self.root.join(label.as_str())
    }

    /// The file that proves c2 created a deploy directory: written the
    /// moment the directory appears, before anything is unpacked into it.
    pub(crate) fn deploy_marker(dir: &Path) -> PathBuf {
        dir.join(".c2-deploy")
    }

    /// The name of the release a deploy directory was made from, for the
    /// environment of its commands in later runs.
    pub(crate) fn deploy_release_record(dir: &Path) -> PathBuf {
        dir.join(".c2-release")
    }

    /// The tag every process the deploy's commands start carries in its
    /// environment, so c2 can find them when a stop fails.
    pub(crate) fn deploy_tag(dir: &Path) -> PathBuf {
        dir.join(".c2-tag")
    }

    /// noproxy: the symlink to the live release.
    pub(crate) fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// Takes the lock that serialises c2 runs changing this machine's
    /// deploys; waits (and says so) while another run holds it.
    pub(crate) fn lock(&self) -> Result<fsutil::Lock> {
        fsutil::lock(&self.root.join(".c2.lock"))
    }

    /// proxy mode: the frontend proxy's files and the local state.
    pub(crate) fn proxy_dir(&self) -> PathBuf {
        self.root.join("frontend-proxy")
    }

    pub(crate) fn state_file(&self) -> PathBuf {
        self.proxy_dir().join("state.json")
    }

    /// The operators' deploy lock (`c2 lock`), without remote state.
    pub(crate) fn deploy_lock_file(&self) -> PathBuf {
        self.proxy_dir().join("lock.json")
    }

    /// noproxy: the release live before the current one (`rollback`).
    pub(crate) fn noproxy_file(&self) -> PathBuf {
        self.proxy_dir().join("noproxy.json")
    }

    /// What the health watch remembers of each deploy (`c2 heal`, slaves).
    pub(crate) fn health_file(&self) -> PathBuf {
        self.proxy_dir().join("health.json")
    }

    /// The history of changes (`c2 history`), without remote state.
    pub(crate) fn history_file(&self) -> PathBuf {
        self.proxy_dir().join("history.jsonl")
    }

    pub(crate) fn nginx_conf(&self) -> PathBuf {
        self.proxy_dir().join("nginx.conf")
    }

    /// The nginx template context that produced nginx.conf.
    pub(crate) fn nginx_ctx(&self) -> PathBuf {
        self.proxy_dir().join("nginx.ctx.json")
    }

    /// The config the host nginx is asked to check before it is installed.
    pub(crate) fn nginx_conf_candidate(&self) -> PathBuf {
        self.proxy_dir().join("nginx.conf.new")
    }

    /// docker driver: the frontendproxy container's compose file.
    pub(crate) fn compose_file(&self) -> PathBuf {
        self.proxy_dir().join("docker-compose.yml")
    }

    /// host driver: nginx's pid file and error log.
    pub(crate) fn nginx_pid(&self) -> PathBuf {
        self.proxy_dir().join("nginx.pid")
    }

    pub(crate) fn nginx_error_log(&self) -> PathBuf {
        self.proxy_dir().join("error.log")
    }
}
