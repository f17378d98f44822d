//! c2's integration tests: the real `c2` binary on scratch machines
//! (`common::Env`), against real nginx, moto and docker. One test binary,
//! one module per area; what used to be per-binary (the shared moto server,
//! the docker engine and its image janitor, the docker lock) lives in
//! `common` once for the whole run.

mod common;

mod api;

mod await_slaves;
mod aws;
mod capacity;
mod certificates;
mod command_env;
mod completion;
mod config;
mod docker;
mod docker_driver;
mod dry_run;
mod etcd;
mod examples;
mod faults;
mod fetch_timeout;
mod fleet;
mod fleet_hosts;
mod heal;
mod health;
mod hooks;
mod journal;
mod limits;
mod mustache_spec;
mod noproxy;
mod noproxy_rollback;
mod output;
mod package;
mod progress;
mod proxy;
mod prune;
mod publish;
mod recipes;
mod remote;
mod rollback;
mod s3;
mod tarballs;
mod zero_downtime;
