//! AWS ECR: `aws-docker-login-cmd`.

use anyhow::{bail, Context, Result};
use base64::Engine;

use super::{block_on, describe_error, sdk_config};

/// `docker login -u AWS -p <password> <registry>` for the account's
/// registry, or the one with id `registry_id`.
pub fn login_command(registry_id: Option<&str>) -> Result<String> {
    let client = aws_sdk_ecr::Client::new(sdk_config());
    let data = block_on(async {
        let mut req = client.get_authorization_token();
        if let Some(id) = registry_id {
            // Deprecated in the API (a token now reaches every registry the
            // caller may use) but still honoured, and the old tool passed it.
            #[allow(deprecated)]
            {
                req = req.registry_ids(id);
            }
        }
        req.send().await.map_err(|e| {
            anyhow::anyhow!("ECR GetAuthorizationToken failed: {}", describe_error(&e))
        })
    })?;
    let entries = data.authorization_data();
    if entries.len() != 1 {
        bail!(
            "ECR GetAuthorizationToken returned {} authorization entries, expected exactly one",
            entries.len()
        );
    }
    let entry = &entries[0];
    login_from(
        entry.authorization_token().unwrap_or_default(),
        entry.proxy_endpoint().unwrap_or_default(),
    )
}

/// Builds the login command from a token (`base64("AWS:<password>")`) and
/// a proxy endpoint. Errors never quote the token.
pub fn login_from(token: &str, proxy_endpoint: &str) -> Result<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .context("the ECR authorization token is not valid base64 text")?;
    let Some(password) = decoded.strip_prefix("AWS:") else {
        bail!("the ECR authorization token does not have the form AWS:<password>");
    };
    if proxy_endpoint.is_empty() {
        bail!("ECR returned no proxy endpoint");
    }
    let registry = proxy_endpoint
        .strip_prefix("https://")
        .unwrap_or(proxy_endpoint);
    Ok(format!("docker login -u AWS -p {password} {registry}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn builds_the_login_command() {
        assert_eq!(
            login_from(
                &b64("AWS:s3cr3t"),
                "https://123.dkr.ecr.eu-west-1.amazonaws.com"
            )
            .unwrap(),
            "docker login -u AWS -p s3cr3t 123.dkr.ecr.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn bad_tokens_are_clear_errors_that_do_not_quote_the_token() {
        let e = login_from("!!not base64!!", "https://r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid base64"), "{e}");
        let e = login_from(&b64("USER:hunter2"), "https://r")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AWS:<password>") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
