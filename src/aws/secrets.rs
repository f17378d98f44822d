//! AWS Secrets Manager: the `awsSecretArn` context source.
//!
//! A secret's value is returned to the caller only: it never goes into a
//! log line or an error message (the SDK's errors carry no value either).

use anyhow::{bail, Result};

use super::{block_on, describe_error, sdk_config};

fn client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk_config())
}

/// The SecretString of `arn`, or `None` if the secret does not exist.
pub fn secret_string(arn: &str) -> Result<Option<String>> {
    let client = client();
    block_on(async {
        match client.get_secret_value().secret_id(arn).send().await {
            Ok(out) => match out.secret_string() {
                Some(s) => Ok(Some(s.to_string())),
                None => {
                    bail!("secret {arn} has no SecretString (binary secrets cannot be context)")
                }
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => bail!("cannot read secret {arn}: {}", describe_error(&e)),
        }
    })
}
