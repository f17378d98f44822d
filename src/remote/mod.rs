//! Remote state: commands edit a master state in S3 (or a shared
//! directory, or etcd); every machine runs `slave-update` to match it and
//! report.

pub mod copy;
pub mod etcd;
pub mod fleet;
pub mod identity;
pub mod master;
pub mod slave;
pub mod status;
pub mod store;
