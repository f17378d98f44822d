//! Names that become file names: release names (blobs in the store),
//! deploy labels (directories in deploysDir), slave labels (prefixes in the
//! remote state) and context names (files in contextCache). Each is checked
//! once, where it enters c2 (command line, config, state file), and is a
//! type from then on.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// One path component: not empty, not `.` or `..`, no `/`, no whitespace
/// and no control characters. Names are printed one per line and as
/// whitespace-separated words (status, logs, shell completion) and handed
/// to release scripts, so a newline or a space would split one name in two.
fn is_one_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub(crate) struct $name(String);

        impl $name {
            #[allow(dead_code)] // not every kind of name is read as a str
            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = anyhow::Error;
            fn try_from(s: String) -> Result<$name> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A release: a blob name in the release store, e.g. `shop-1.4.zip`.
    ReleaseName
);

name_type!(
    /// A deploy label: the directory `<deploysDir>/<label>`.
    DeployLabel
);

name_type!(
    /// A slave label: `<remote state>/slaves/<label>/`.
    SlaveLabel
);

name_type!(
    /// A context name: `<contextCache>/<name>.json` and a template key.
    ContextName
);

/// The start of c2's own names: in a release store (`.c2-upload/`,
/// `.c2-pruned/`) and in a deploy directory (`.c2-deploy`, `.c2-tag`, …).
/// No release may be named so, nor hold such a file at its top.
pub(crate) const RESERVED_PREFIX: &str = ".c2-";

impl ReleaseName {
    pub(crate) fn parse(s: &str) -> Result<ReleaseName> {
        if !is_one_component(s) {
            bail!("invalid release name {s:?}: expected a file name such as shop-1.4.zip, without spaces or control characters");
        }
        if s.starts_with(RESERVED_PREFIX) {
            bail!("invalid release name {s:?}: names starting with {RESERVED_PREFIX} are c2's own; choose another name");
        }
        Ok(ReleaseName(s.to_string()))
    }

    /// The default deploy label: the name without its archive suffix
    /// (`shop-1.4.zip` → `shop-1.4`, `shop-1.5.tar.gz` → `shop-1.5`), or
    /// without its last extension.
    pub(crate) fn default_label(&self) -> Result<DeployLabel> {
        let stem = match self.packing().1 {
            Some(stem) => stem,
            None => match self.0.rsplit_once('.') {
                Some((stem, _)) if !stem.is_empty() => stem,
                _ => &self.0,
            },
        };
        DeployLabel::parse(stem)
    }

    /// How the release is packed, as its name says, and the name without
    /// the tarball suffix when it is one.
    fn packing(&self) -> (Packing, Option<&str>) {
        for (suffix, packing) in [
            (".tar.gz", Packing::TarGz),
            (".tgz", Packing::TarGz),
            (".tar", Packing::Tar),
        ] {
            if let Some(stem) = self.0.strip_suffix(suffix).filter(|s| !s.is_empty()) {
                return (packing, Some(stem));
            }
        }
        (Packing::Zip, None)
    }

    /// How the release is packed: a tarball by its suffix, else a zip (as
    /// every Camus2 release is, whatever its name).
    pub(crate) fn packed_as(&self) -> Packing {
        self.packing().0
    }
}

/// How a release archive is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    Zip,
    /// `.tar`
    Tar,
    /// `.tar.gz` or `.tgz`
    TarGz,
}

impl Packing {
    /// The content type it is uploaded with.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Packing::Zip => "application/zip",
            Packing::Tar => "application/x-tar",
            Packing::TarGz => "application/gzip",
        }
    }
}

/// Entries of deploysDir that are not deploys.
pub(crate) const RESERVED_IN_DEPLOYS_DIR: [&str; 2] = ["current", "frontend-proxy"];

impl DeployLabel {
    pub(crate) fn parse(s: &str) -> Result<DeployLabel> {
        if !is_one_component(s) || s.starts_with('.') || RESERVED_IN_DEPLOYS_DIR.contains(&s) {
            bail!("invalid deploy label {s:?}: expected a directory name such as shop-1.4, without spaces or control characters (not current or frontend-proxy)");
        }
        Ok(DeployLabel(s.to_string()))
    }
}

impl SlaveLabel {
    pub(crate) fn parse(s: &str) -> Result<SlaveLabel> {
        if !is_one_component(s) {
            bail!("invalid slave label {s:?}: expected one path component without spaces or control characters");
        }
        Ok(SlaveLabel(s.to_string()))
    }
}

impl ContextName {
    pub(crate) fn parse(s: &str) -> Result<ContextName> {
        if !is_one_component(s) {
            bail!("invalid context name {s:?} (it names a file in contextCache: one path component without spaces or control characters)");
        }
        Ok(ContextName(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names_are_one_path_component() {
        assert!(ReleaseName::parse("shop-1.4.zip").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x.zip",
            "a\0b",
            ".c2-pruned",
            ".c2-upload",
            ".c2-tag",
        ] {
            assert!(ReleaseName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ReleaseName::parse(".c2.zip").is_ok());
    }

    #[test]
    fn default_label_drops_the_last_extension() {
        let label = |r: &str| ReleaseName::parse(r).unwrap().default_label();
        assert_eq!(label("shop-1.4.zip").unwrap().as_str(), "shop-1.4");
        assert_eq!(label("shop.tar.zip").unwrap().as_str(), "shop.tar");
        assert_eq!(label("noext").unwrap().as_str(), "noext");
        assert!(label("current.zip").is_err());
        assert!(label(".hidden.zip").is_err());
        assert_eq!(label("shop-1.5.tar.gz").unwrap().as_str(), "shop-1.5");
        assert_eq!(label("shop-1.5.tgz").unwrap().as_str(), "shop-1.5");
        assert_eq!(label("shop-1.5.tar").unwrap().as_str(), "shop-1.5");
        assert!(label(".tar.gz").is_err(), "no name before the suffix");
    }

    #[test]
    fn the_packing_is_told_by_the_suffix_and_a_zip_otherwise() {
        let packed = |r: &str| ReleaseName::parse(r).unwrap().packed_as();
        assert_eq!(packed("a.tar.gz"), Packing::TarGz);
        assert_eq!(packed("a.tgz"), Packing::TarGz);
        assert_eq!(packed("a.tar"), Packing::Tar);
        for zip in ["a.zip", "a", "a.tar.zip", "a.gz", "tar"] {
            assert_eq!(packed(zip), Packing::Zip, "{zip}");
        }
    }

    #[test]
    fn deploy_labels_cannot_clash_with_c2s_own_entries() {
        assert!(DeployLabel::parse("blue").is_ok());
        for bad in ["", "current", "frontend-proxy", ".c2.lock", "a/b", ".."] {
            assert!(DeployLabel::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_refuse_whitespace_and_control_characters() {
        for bad in [
            "a\nb",
            "a\tb",
            "a b",
            "a\0b",
            "a\rb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{2028}b",
        ] {
            assert!(ReleaseName::parse(bad).is_err(), "{bad:?}");
            assert!(DeployLabel::parse(bad).is_err(), "{bad:?}");
            assert!(SlaveLabel::parse(bad).is_err(), "{bad:?}");
            assert!(ContextName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["web-1", "i-0abc123", "shop_1.4", "caf\u{e9}"] {
            assert!(DeployLabel::parse(good).is_ok(), "{good:?}");
            assert!(SlaveLabel::parse(good).is_ok(), "{good:?}");
            assert!(ContextName::parse(good).is_ok(), "{good:?}");
        }
        let err = DeployLabel::parse("a\nb").unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn names_from_json_are_checked() {
        assert!(serde_json::from_str::<ReleaseName>("\"../../etc\"").is_err());
        let ok: DeployLabel = serde_json::from_str("\"blue\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"blue\"");
    }
}
