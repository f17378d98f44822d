//! AWS Route53: the DNS-01 TXT records of the Let's Encrypt hooks (SPEC §8).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};

use super::{block_on, describe_error, sdk_config};

/// How long to wait for Route53 to apply a change.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

/// Creates (or replaces) a TXT record and waits until Route53 has it in
/// sync on its name servers.
pub fn upsert_txt(zone: &str, name: &str, value: &str, ttl: i64) -> Result<()> {
    change_txt(ChangeAction::Upsert, zone, name, value, ttl)
}

/// Deletes a TXT record (name, value and TTL must match it).
pub fn delete_txt(zone: &str, name: &str, value: &str, ttl: i64) -> Result<()> {
    change_txt(ChangeAction::Delete, zone, name, value, ttl)
}

fn change_txt(action: ChangeAction, zone: &str, name: &str, value: &str, ttl: i64) -> Result<()> {
    let client = aws_sdk_route53::Client::new(sdk_config());
    let what = format!("{} TXT {name} in hosted zone {zone}", action.as_str());
    block_on(async {
        let record = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::Txt)
            .ttl(ttl)
            .resource_records(ResourceRecord::builder().value(value).build()?)
            .build()?;
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
