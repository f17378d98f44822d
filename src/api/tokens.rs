//! API tokens: `c2 api-token add|list|remove`, and checking the token a
//! request carries.
//!
//! A token is 256 random bits, shown once when it is made; the tokens file
//! (`api.tokensFile`, mode 0600) keeps only its SHA-256, its name and its
//! role. A token presented is hashed and compared with every stored hash in
//! constant time, so neither the file nor the timing gives a token away.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::fsutil;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Read the state, the fleet, the history, the page.
    Read,
    /// Also change deploys, endpoints and the lock.
    Deploy,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Deploy => "deploy",
        })
    }
}

/// One token as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    sha256: String,
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tokens {
    tokens: Vec<Entry>,
}

/// The most the tokens file may hold.
const MAX_BYTES: u64 = 1 << 20;

impl Tokens {
    /// The file at `path`; a missing one holds no token.
    pub(crate) fn load(path: &Path) -> Result<Tokens> {
        match fsutil::read_bounded(path, MAX_BYTES)? {
            None => Ok(Tokens::default()),
            Some(bytes) => crate::proxy::state::parse_object(
                &bytes,
                &path.display().to_string(),
                "tokens file",
            ),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        // Hashes only, but still nobody else's business.
        fsutil::write_atomic(path, &bytes, 0o600)
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.tokens
    }

    /// Who `token` is, if it is one of these: compared with every entry in
    /// constant time.
    pub(crate) fn check(&self, token: &str) -> Option<&Entry> {
        let presented = Sha256::digest(token.as_bytes());
        let mut found = None;
        for entry in &self.tokens {
            let Ok(stored) = hex::decode(&entry.sha256) else {
                continue;
            };
            if bool::from(stored.ct_eq(presented.as_slice())) {
                found = Some(entry);
            }
        }
        found
    }
}

/// `api-token add <name> --role R`: a new token, returned to be shown once.
pub(crate) fn add(path: &Path, name: &str, role: Role) -> Result<String> {
    check_name(name)?;
    let mut tokens = Tokens::load(path)?;
    if tokens.tokens.iter().any(|e| e.name == name) {
        bail!("a token called {name} exists already: remove it first, or choose another name");
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token = format!(
        "c2_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    tokens.tokens.push(Entry {
        name: name.to_string(),
        role,
        sha256: hex::encode(Sha256::digest(token.as_bytes())),
    });
    tokens.save(path)?;
    Ok(token)
}

/// `api-token remove <name>`.
pub(crate) fn remove(path: &Path, name: &str) -> Result<()> {
    let mut tokens = Tokens::load(path)?;
    let before = tokens.tokens.len();
    tokens.tokens.retain(|e| e.name != name);
    if tokens.tokens.len() == before {
        bail!("no token called {name}");
    }
    tokens.save(path)
}

/// A token's name: what the history records (`<name>@api`), so a word of
/// letters, digits, `.`, `_` and `-`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("invalid token name {name:?}: letters, digits, '.', '_' and '-', at most 64");
    }
    Ok(())
}

/// Hex encoding, the little the tokens file needs.
mod hex {
    pub fn encode(bytes: impl AsRef<[u8]>) -> String {
        bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, ()> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(());
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| ()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_token_is_shown_once_kept_as_a_hash_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/tokens.json");
        let ci = add(&path, "ci", Role::Deploy).unwrap();
        let viewer = add(&path, "viewer", Role::Read).unwrap();
        assert!(ci.starts_with("c2_") && ci.len() == 46, "{ci}");
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(!file.contains(&ci) && !file.contains(&viewer[3..]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(
            tokens.check(&ci).map(|e| (e.name.as_str(), e.role)),
            Some(("ci", Role::Deploy))
        );
        assert_eq!(tokens.check(&viewer).map(|e| e.role), Some(Role::Read));
        assert!(tokens.check("c2_nope").is_none());
        assert!(tokens.check("").is_none());

        assert!(add(&path, "ci", Role::Read).is_err());
        assert!(add(&path, "two words", Role::Read).is_err());
        remove(&path, "ci").unwrap();
        assert!(Tokens::load(&path).unwrap().check(&ci).is_none());
        assert!(remove(&path, "ci").is_err());
    }
}
