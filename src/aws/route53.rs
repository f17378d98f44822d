//! AWS Route53: the DNS-01 TXT records of the Let's Encrypt hooks.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};

use super::{block_on, describe_error, sdk_config};

/// How long to wait for Route53 to apply a change.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

/// Adds `value` to the TXT record `name` (creating it), keeping values
/// already there: a certificate for `a.example` and `*.a.example` puts two
/// validations on one name. Waits until Route53 has the change in sync.
pub fn add_txt_value(zone: &str, name: &str, value: &str, ttl: i64) -> Result<()> {
    let mut values = txt_values(zone, name)?.map(|(v, _)| v).unwrap_or_default();
    if !values.iter().any(|v| v == value) {
        values.push(value.to_string());
    }
    change_txt(ChangeAction::Upsert, zone, name, &values, ttl)
}

/// Removes `value` from the TXT record `name`; deletes the record when it
/// was the last value.
pub fn remove_txt_value(zone: &str, name: &str, value: &str) -> Result<()> {
    let Some((values, ttl)) = txt_values(zone, name)? else {
        return Ok(());
    };
    let rest: Vec<String> = values.iter().filter(|v| *v != value).cloned().collect();
    if rest.len() == values.len() {
        return Ok(());
    }
    if rest.is_empty() {
        // A DELETE must name the record exactly as it is.
        change_txt(ChangeAction::Delete, zone, name, &values, ttl)
    } else {
        change_txt(ChangeAction::Upsert, zone, name, &rest, ttl)
    }
}

/// The values and TTL of TXT record `name`, if it exists.
fn txt_values(zone: &str, name: &str) -> Result<Option<(Vec<String>, i64)>> {
    let client = aws_sdk_route53::Client::new(sdk_config());
    let wanted = format!("{}.", name.trim_end_matches('.'));
    block_on(async {
        let out = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(&wanted)
            .start_record_type(RrType::Txt)
            .max_items(1)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read TXT {name} in hosted zone {zone}: {}",
                    describe_error(&e)
                )
            })?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|r| r.name().eq_ignore_ascii_case(&wanted) && *r.r#type() == RrType::Txt)
            .map(|r| {
                let values = r
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect();
                (values, r.ttl().unwrap_or(60))
            }))
    })
}

fn change_txt(
    action: ChangeAction,
    zone: &str,
    name: &str,
    values: &[String],
    ttl: i64,
) -> Result<()> {
    let client = aws_sdk_route53::Client::new(sdk_config());
    let what = format!("{} TXT {name} in hosted zone {zone}", action.as_str());
    block_on(async {
        let mut record = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::Txt)
            .ttl(ttl);
        for value in values {
            record = record.resource_records(ResourceRecord::builder().value(value).build()?);
        }
        let record = record.build()?;
        let batch = ChangeBatch::builder()
            .changes(
                Change::builder()
                    .action(action.clone())
                    .resource_record_set(record)
                    .build()?,
            )
            .build()?;
        let out = client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {}", describe_error(&e)))?;
        let Some(info) = out.change_info() else {
            bail!("{what}: Route53 returned no change id");
        };
        let id = info.id().to_string();
        let mut status = info.status().clone();
        let deadline = Instant::now() + SYNC_TIMEOUT;
        while status != ChangeStatus::Insync {
            if Instant::now() > deadline {
                bail!("{what}: change {id} not in sync after {SYNC_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let got = client
                .get_change()
                .id(&id)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{what}: {}", describe_error(&e)))?;
            status = got
                .change_info()
                .map(|c| c.status().clone())
                .unwrap_or(ChangeStatus::Pending);
        }
        Ok(())
    })
}
