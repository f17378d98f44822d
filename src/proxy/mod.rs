//! Proxy mode (SPEC §6): many deploys side by side behind an nginx
//! frontend proxy, endpoints switched between them.

pub mod planner;
pub mod state;
