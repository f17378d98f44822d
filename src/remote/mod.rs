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

/// A remote store that could not be reached or did not answer: nothing is
/// wrong with what it holds, so the cure is to bring it back, not to
/// remove anything.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

impl Unreachable {
    /// Whether `e` came of a store out of reach.
    pub fn caused(e: &anyhow::Error) -> bool {
        e.chain()
            .any(|cause| cause.downcast_ref::<Unreachable>().is_some())
    }
}
