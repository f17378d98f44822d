//! The command tree: every command, argument and help text, defined once.
//! `commands` runs them; `help` prints `c2 help` from it; `completion`
//! completes from it.
//!
//! A doc comment's first paragraph is the short help (`-h`, the command
//! list), the whole comment the long help (`--help`, `c2 help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::engine::ArgValueCandidates;

use crate::api::tokens::Role;
use crate::completion::{self, Kind};

/// Deploy software releases onto servers (Camus2-compatible).
///
/// A release is a zip or a tarball in the release store (a local directory
/// or an S3 prefix) holding release.json and mustache templates. In noproxy mode
/// (the default) c2 runs one live release per machine and `start` replaces
/// it. In proxy mode c2 runs many deploys side by side, each on its own
/// port, behind an nginx frontend proxy whose endpoints `connect` points at
/// a deploy (blue/green); with remote state, commands edit a master state
/// in S3 that every machine applies with `slave-update`.
///
/// The config is --config PATH, else $CAMUS2_CONFIG (a path or an
/// s3://bucket/key URL), else ../etc/camus2.json or ../etc/camus2.yaml
/// beside the c2 executable. S3_ENDPOINT=http[s]://host:port points S3 at
/// another server (path-style); the standard AWS settings (environment,
/// profiles, instance roles) apply.
///
/// Commands that change something log to stdout and append the same lines
/// to the config's logFile; the others write only their result to stdout.
/// Warnings go to stderr. Any failure exits 1 with one line on stderr
/// saying what failed and why.
#[derive(Debug, Parser)]
#[command(
    name = "c2",
    version = VERSION,
    disable_help_subcommand = true,
    after_help = "Run `c2 help` for what each command does."
)]
pub struct Cli {
    /// The config file (default: $CAMUS2_CONFIG, else ../etc/camus2.json|yaml beside c2)
    #[arg(long, global = true, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// Also show what the libraries c2 uses (the AWS SDK) report, on stderr;
    /// `RUST_LOG` (e.g. `aws_config=debug`) chooses what instead
    #[arg(long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The version, the commit built from (`-dirty` when tracked files
/// differed from it) and the target: what `c2 version` and `--version` say.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAMUS2_BUILD_COMMIT"),
    ", ",
    env!("CAMUS2_BUILD_TARGET"),
    ")"
);

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what each command does.
    ///
    /// Without a command: the usage, then every command with its arguments
    /// and what it does in each mode. With one: that command's help, as
    /// `c2 <command> --help` prints it.
    Help {
        /// The command to explain
        #[arg(add = ArgValueCandidates::new(completion::command_names))]
        command: Option<String>,
    },
    /// Write the man pages, c2(1) and one per command, into DIR.
    ///
    /// Generated from the same definitions as this help, so they always
    /// match the binary: `c2.1`, `c2-start.1`, … (what the Debian package
    /// installs under /usr/share/man/man1). Prints each file written.
    ManPages {
        /// The directory to write them into (created if missing)
        #[arg(value_hint = ValueHint::DirPath)]
        dir: PathBuf,
    },
    /// Show the version, the git commit c2 was built from and its target.
    ///
    /// `c2 0.1.0 (commit 4289d86a1b2c, x86_64-unknown-linux-gnu)`; the
    /// commit ends in `-dirty` when the build's tracked files differed from
    /// it, and is `unknown` for a build outside a git checkout. `--version`
    /// says the same.
    Version,
    /// List the releases in the release store, most recent first.
    ///
    /// One name per line: what `start` and `unpack` take. S3 store: every
    /// object under the prefix by last modification, showing the last
    /// component of each key. Local directory: its files (not
    /// subdirectories), newest first.
    ListReleases,
    /// Print the log file.
    ShowLog,
    /// Print the built-in nginx.conf template.
    ///
    /// The starting point for your own nginxConfTemplatePath.
    ShowDefaultNginxConfig,
    /// Fetch the infrastructure context into the context cache.
    ///
    /// For each configSources entry, reads the file, S3 object or Secrets
    /// Manager secret (its SecretString), checks it is JSON and writes it to
    /// <contextCache>/<name>.json (mode 0600). Secret values never reach a
    /// log. `start` does this by itself.
    FetchContext {
        /// Wait for each missing source instead of failing, checking every 10 seconds
        #[arg(long)]
        retry: bool,
        /// With --retry: give up after this long (e.g. 90s, 10m; at most a
        /// day), naming each source still missing (default: wait forever)
        #[arg(long, value_name = "DURATION", value_parser = parse_wait, requires = "retry")]
        timeout: Option<std::time::Duration>,
    },
    /// Download, unpack and expand the templates of a release into a directory.
    ///
    /// Copies the release to <TODIR>/<RELEASE>, unpacks it into <TODIR>,
    /// reads release.json and renders its templates with the context from
    /// the context cache (no ports). Runs none of the release's commands. An
    /// entry that would land outside <TODIR> is refused.
    Unpack {
        /// A release name from `list-releases`
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Releases)))]
        release: String,
        /// The directory to unpack into
        #[arg(value_hint = ValueHint::DirPath)]
        todir: PathBuf,
    },
    /// Render one template with the infrastructure context.
    ///
    /// The context comes from the context cache: run `fetch-context` first.
    ExpandTemplate {
        /// The mustache template file
        #[arg(value_hint = ValueHint::FilePath)]
        template: PathBuf,
        /// The file to write
        #[arg(value_hint = ValueHint::FilePath)]
        dest: PathBuf,
    },
    /// Print a `docker login` command for AWS ECR.
    ///
    /// For the shell to run: $(c2 aws-docker-login-cmd). Nothing else is
    /// printed and the password goes nowhere else.
    AwsDockerLoginCmd {
        /// The registry id (default: the account's registry)
        #[arg(value_name = "REGISTRY_ID")]
        registry_id: Option<String>,
    },
    /// Deploy a release.
    ///
    /// Noproxy mode: replaces the live release. Fetches the context, unpacks
    /// the release into <deploysDir>/<DEPLOY>, runs its prestartCommand, runs
    /// the stopCommand of the release `current` points to, points `current`
    /// at the new directory and runs its startCommand. If a step before the
    /// old release stops fails, the live release is untouched.
    ///
    /// Proxy mode: creates a deploy of the release on the lowest free port of
    /// dynamicPortRange and starts it; nginx sends it nothing until an
    /// endpoint is connected to it. A deploy with the same label and release
    /// is left as it is; one with another release is an error. With remote
    /// state, only the master state changes; each slave creates the deploy on
    /// its next `slave-update`.
    Start {
        /// A release name from `list-releases`
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Releases)))]
        release: String,
        /// The deploy label (default: the release name without its extension)
        #[arg(value_name = "DEPLOY")]
        deploy: Option<String>,
        #[command(flatten)]
        plan: DryRun,
        #[command(flatten)]
        fleet: AwaitSlaves,
    },
    /// Stop a deploy.
    ///
    /// Noproxy mode: stops the live release (its stopCommand) and removes
    /// `current`, whatever <DEPLOY> says, as Camus2 did; a name that is not
    /// the live release is warned about on stderr.
    ///
    /// Proxy mode: runs the deploy's stopCommand and removes it. Refused while
    /// an endpoint is connected to it (the blue/green rule): connect the
    /// endpoint elsewhere or disconnect it first. With remote state, only the
    /// master state changes.
    Stop {
        /// A deploy label (noproxy: anything)
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Deploys)))]
        deploy: String,
        #[command(flatten)]
        plan: DryRun,
        #[command(flatten)]
        fleet: AwaitSlaves,
    },
    /// Show endpoints and deploys.
    ///
    /// Noproxy mode: the live release. Proxy mode: each endpoint with its
    /// server names, ports and connected deploy, then each deploy with its
    /// release and port, then how many ports of dynamicPortRange are in
    /// use; with remote state, those of the master state.
    Status {
        /// Also show every slave's report (remote state)
        #[arg(long)]
        show_slaves: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json_output: bool,
    },
    /// Route an endpoint to a deploy.
    ///
    /// Proxy mode. Replaces the endpoint's previous connection: nginx is
    /// reconfigured and reloaded, in-flight requests finish on the old
    /// deploy, which keeps running (stop it, or connect back to roll back).
    /// With remote state, only the master state changes.
    Connect {
        /// An endpoint label from the config
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Endpoints)))]
        endpoint: String,
        /// A deploy label
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Deploys)))]
        deploy: String,
        /// Connect even if the deploy's health check fails (or, with
        /// --await-slaves, a live slave does not run it)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        plan: DryRun,
        #[command(flatten)]
        fleet: AwaitSlaves,
    },
    /// Stop routing an endpoint.
    ///
    /// Proxy mode. nginx answers the endpoint's server names with 503; the
    /// deploy keeps running and can now be stopped.
    Disconnect {
        /// An endpoint label from the config
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Endpoints)))]
        endpoint: String,
        #[command(flatten)]
        plan: DryRun,
        #[command(flatten)]
        fleet: AwaitSlaves,
    },
    /// Go back to what was live before the last change.
    ///
    /// Proxy mode: route an endpoint back to the deploy it had. Every
    /// connect, disconnect and rollback records the deploy it replaced;
    /// rollback connects the endpoint back to it and records the deploy it
    /// leaves, so a second rollback goes forward again. After a disconnect
    /// it reconnects the deploy the endpoint had. With remote state, only
    /// the master state changes. Noproxy mode (no endpoint): make the
    /// release that was live before the current one live again, reusing its
    /// directory when it is still there. Fails when there is nothing to go
    /// back to.
    Rollback {
        /// An endpoint label from the config (proxy mode; none in noproxy mode)
        #[arg(add = ArgValueCandidates::new(|| completion::live(Kind::Endpoints)))]
        endpoint: Option<String>,
        /// Roll back even if the deploy's health check fails (or, with
        /// --await-slaves, a live slave does not run it)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        plan: DryRun,
        #[command(flatten)]
        fleet: AwaitSlaves,
    },
    /// Lock deploys, unlock them, or show who holds the lock.
    ///
    /// `lock acquire -m MESSAGE` takes the deploy lock; while it is held,
    /// start, stop, connect, disconnect and rollback fail, naming who holds
    /// it, since when and why (slave-update goes on following the master,
    /// and --dry-run still works). `lock release` lifts it, whoever took it.
    /// `lock status` prints `locked by USER@HOST since TIME: MESSAGE` or
    /// `unlocked`. With remote state the lock is kept beside the master
    /// state, for every operator; otherwise in
    /// <deploysDir>/frontend-proxy/lock.json.
    Lock {
        #[command(subcommand)]
        action: LockAction,
    },
    /// Show the latest changes, newest first.
    ///
    /// One line per start, stop, connect, disconnect, rollback, lock acquire
    /// and lock release that succeeded: when (UTC), who (user@host), the
    /// command, and what it changed, e.g. `2026-11-23T03:12:09Z alice@ci-7
    /// connect main shop-1.5 (main: shop-1.4 -> shop-1.5)`. With remote state,
    /// the changes of every operator to the master; otherwise this machine's.
    History {
        /// How many changes to show
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print a JSON array of the events (with the state before and after each) instead of text
        #[arg(long)]
        json_output: bool,
    },
    /// Rewrite the nginx config and reload the frontend proxy.
    ///
    /// From this machine's state and the current config, starting nginx if it
    /// is not running: after changing endpoints or a certificate. Proxy mode,
    /// local or remote state.
    RestartFrontendProxy,
    /// Stop the frontend proxy.
    ///
    /// The deploys keep running; the next connect, disconnect or
    /// restart-frontend-proxy starts it again. Proxy mode, local or remote
    /// state.
    ShutdownFrontendProxy,
    /// Get a Let's Encrypt certificate for the endpoints with generated https certificates.
    ///
    /// Restarts the frontend proxy, runs certbot (HTTP-01, webroot) for the
    /// server names of every endpoint with httpsWithRedirect: generated, then
    /// restarts the proxy to serve the certificate. Needs
    /// autoCertContactEmail.
    GenerateSslCertificate,
    /// Check a release and upload it to the release store.
    ///
    /// <RELEASE> is a directory, a zip or a tarball (.tar, .tar.gz, .tgz),
    /// which is uploaded as it is. Before anything is uploaded, the
    /// release is checked as a deploy would read it: release.json parses,
    /// every template it lists exists and parses, every configSources file
    /// is JSON, and no entry leads outside the release (an absolute or `..`
    /// path, a symlink pointing out), within the config's limits. A
    /// directory is zipped first, deterministically: entries sorted,
    /// timestamps fixed, permissions kept, symlinks stored as symlinks, so
    /// the same contents always give the same zip. An existing release is
    /// never replaced without --force. Prints the release name.
    Publish {
        /// A release directory, zip or tarball
        #[arg(value_name = "RELEASE", value_hint = ValueHint::AnyPath)]
        path: PathBuf,
        /// The release name in the store (default: the directory's name
        /// plus .zip, or the archive's file name); its suffix says how it
        /// is packed
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Replace a release of that name already in the store
        #[arg(long)]
        force: bool,
    },
    /// Delete old releases from the release store, keeping the N newest and every one in use.
    ///
    /// Deletes every release beyond the N newest (in list-releases order)
    /// that no deploy uses: in noproxy mode the one `current` runs; in
    /// proxy mode every deploy of this machine's state and, with remote
    /// state, of the master. Prints `deleted <release>` for each, or with
    /// --dry-run `would delete <release>` and deletes nothing. A start
    /// racing a prune either keeps its release or fails cleanly.
    Prune {
        /// How many of the newest releases to keep, used or not
        #[arg(long, value_name = "N")]
        keep: usize,
        /// Only print what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
    /// Make this machine match the master state, and report back (remote state).
    ///
    /// Applies the differences as a local command would (free ports, create
    /// deploys, re-create changed ones, reconfigure nginx, then stop the
    /// deploys traffic has left) and writes this machine's report. Run once,
    /// it exits 1 when the update failed. SIGTERM or SIGINT lets the action
    /// under way finish, then c2 exits 0.
    SlaveUpdate {
        /// Repeat forever, one update every N seconds (decimals allowed, e.g. 0.5, or a duration such as 30s; from 0.1 s to a day); deploys' health is watched at least every 10 s in between; a failed round is logged and the loop goes on
        #[arg(long, value_name = "N", value_parser = parse_period)]
        repeat: Option<std::time::Duration>,
    },
    /// Watch this machine's deploys and restart those that stop answering (local state).
    ///
    /// Asks every deploy that has a health check (one GET, 5 s); after 3
    /// failed checks in a row, runs its stop command, its start command and
    /// its health gate. A failed restart is tried again after 15 s,
    /// doubling up to 10 minutes; after 5 restarts within an hour the
    /// deploy is flapping and left alone until it answers again. Also
    /// brings the frontend proxy back if it stopped serving. With remote
    /// state, slave-update does this on every machine.
    Heal {
        /// Repeat forever, a round every PERIOD (e.g. 10s, 1m, or a number of
        /// seconds; from 0.1 s to a day), at least every 10 s; SIGTERM or
        /// SIGINT lets the step under way finish
        #[arg(long, value_name = "PERIOD", value_parser = parse_period)]
        repeat: Option<std::time::Duration>,
    },
    /// Delete slave reports older than 5 minutes (remote state).
    ///
    /// A running `slave-update --repeat` rewrites its report at least once a
    /// minute, so with the default only machines that are gone are
    /// forgotten. With etcd there is nothing to do: a report disappears by
    /// itself once its slave stops.
    SlaveFlush {
        /// Flush reports not written for this long (e.g. 90s, 1h; at most a year)
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_age)]
        older_than: std::time::Duration,
    },
    /// Copy a master state and its history to another remote location.
    ///
    /// FROM and TO are remote locations as remoteStateS3 takes them
    /// (s3://bucket/base, an absolute directory, etcd://host:2379/prefix),
    /// so a fleet can move between S3, a shared directory and etcd: copy,
    /// then point every machine's config at TO. Slave reports are not
    /// copied (slaves write them again), nor is a deploy lock. An existing
    /// master state at TO is replaced only with --force.
    RemoteCopy {
        /// Where the master state is now
        from: String,
        /// Where it goes
        to: String,
        /// Replace a master state that exists at TO
        #[arg(long)]
        force: bool,
    },
    /// Serve the HTTP API and the status page.
    ///
    /// Every deploy command and the fleet's view, over HTTP with a token
    /// (`c2 api-token`), for CI systems, bots and people: routes under /v1,
    /// their OpenAPI document at /openapi.json, a page at /. Changes go
    /// through the same rules, lock and history as on the command line.
    /// Listens on the config's api.listen (default 127.0.0.1:8470), with
    /// HTTPS when api.tls names a certificate; plain HTTP on an address
    /// other than loopback needs --insecure-http. SIGHUP reloads the
    /// tokens and the certificate; SIGTERM lets the changes under way
    /// finish, then stops.
    Serve {
        /// Listen on ADDR:PORT instead of the config's api.listen
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Allow plain HTTP on an address other than loopback (tokens then
        /// cross the network in clear)
        #[arg(long)]
        insecure_http: bool,
    },
    /// Manage the API's tokens.
    ///
    /// A token is shown once, when added; the tokens file (api.tokensFile,
    /// mode 0600) keeps only its SHA-256 with its name and role. A `read`
    /// token sees everything; a `deploy` token also changes deploys,
    /// endpoints and the lock, recorded in the history as `<name>@api`.
    /// A running `c2 serve` picks changes up on SIGHUP.
    ApiToken {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Get certificates with certbot through Route53 DNS-01.
    ///
    /// Reads $HX_LETSENCRYPT_CONFIG (default ../etc/letsencrypt-aws.json
    /// beside c2) and runs certbot in manual mode with le-auth-hook and
    /// le-cleanup-hook as its hooks.
    LeGetCerts,
    /// certbot's manual auth hook: create the DNS-01 TXT record.
    LeAuthHook,
    /// certbot's manual cleanup hook: delete the DNS-01 TXT record.
    LeCleanupHook,
    /// Print a shell completion script.
    ///
    /// It completes commands, options, and the live names: releases, deploy
    /// labels and endpoints, asked of c2 as you type (with the --config on
    /// the line, if any). Bash: eval "$(c2 completions bash)". Zsh, after
    /// compinit: source <(c2 completions zsh). Fish: c2 completions fish |
    /// source.
    Completions {
        /// bash, zsh or fish
        #[arg(value_parser = completion::SHELLS)]
        shell: String,
    },
    /// Forward a release command's output to c2's stdout or stderr (c2
    /// starts two of these around every release command)
    #[command(name = crate::shell::FORWARD, hide = true)]
    Forward { stream: crate::shell::Stream },
    /// Run a release command that dies with c2 (c2 starts every one this way)
    #[command(name = crate::shell::RUN_CHILD, hide = true)]
    RunChild {
        parent: u32,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// `c2 lock …`.
#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Take the deploy lock; fails if someone holds it.
    Acquire {
        /// Why deploys are locked (one line), shown to whoever is refused
        #[arg(short, long)]
        message: String,
    },
    /// Lift the deploy lock, whoever holds it.
    Release,
    /// Show whether deploys are locked, and by whom.
    Status {
        /// Print the lock as JSON (`null` when unlocked)
        #[arg(long)]
        json_output: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token and print it (once).
    Add {
        /// The token's name, recorded in the history as `<name>@api`
        name: String,
        /// read: see everything; deploy: also make changes
        #[arg(long, value_enum)]
        role: Role,
    },
    /// List the tokens' names and roles.
    List,
    /// Revoke a token.
    Remove {
        /// The token's name
        name: String,
    },
}

/// The longest `--repeat` period: one day. Longer is what cron is for, and
/// the bound keeps the number well inside what a `Duration` holds.
const MAX_PERIOD_SECS: f64 = 86_400.0;
/// The shortest: a tenth of a second. A period that rounds to nothing
/// would be a loop that never rests, hammering the master.
const MIN_PERIOD_SECS: f64 = 0.1;

/// `--dry-run`, on every command that changes deploys.
#[derive(Debug, Clone, Args)]
pub struct DryRun {
    /// Print what would be done (with remote state, to the master state) and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `--await-slaves` and its options, on every command that changes the
/// master state.
#[derive(Debug, Clone, Args)]
pub struct AwaitSlaves {
    /// Remote state: wait until every live slave (reporting within 5
    /// minutes) has applied the change, showing `n/m slaves in sync` on
    /// stderr; fail naming each slave that did not. connect and rollback
    /// first check that every live slave runs the deploy
    #[arg(long)]
    pub await_slaves: bool,
    /// With --await-slaves: fewer live slaves is an error, before anything
    /// is written
    #[arg(long, value_name = "N", default_value_t = 1, requires = "await_slaves")]
    pub min_slaves: usize,
    /// With --await-slaves: how long to wait (e.g. 90s, 10m; at most a
    /// day); the master change stays written on time-out
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait, requires = "await_slaves")]
    pub timeout: std::time::Duration,
}

/// The command line after `c2` as the operator typed it, without the
/// global options (`--config PATH`, `--verbose`): what the history records.
pub fn typed_command() -> Vec<String> {
    without_global_options(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    )
}

fn without_global_options(mut args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => {
                out.push(arg);
                out.extend(args);
                break;
            }
            "--verbose" => {}
            "--config" => {
                args.next();
            }
            a if a.starts_with("--config=") => {}
            _ => out.push(arg),
        }
    }
    out
}

/// The longest wait (`--timeout`): a day. Every duration is bounded where
/// it is parsed, so no deadline computed from one can overflow a clock.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The oldest age `slave-flush --older-than` takes: a year.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// `--timeout DURATION` (`90s`, `10m`): at most [`MAX_WAIT`].
pub(crate) fn parse_wait(text: &str) -> std::result::Result<std::time::Duration, String> {
    parse_duration_up_to(text, MAX_WAIT)
}

/// `--older-than DURATION`: at most [`MAX_AGE`].
fn parse_age(text: &str) -> std::result::Result<std::time::Duration, String> {
    parse_duration_up_to(text, MAX_AGE)
}

fn parse_duration_up_to(
    text: &str,
    max: std::time::Duration,
) -> std::result::Result<std::time::Duration, String> {
    let longest = humantime::format_duration(max);
    match humantime::parse_duration(text) {
        Ok(d) if d <= max => Ok(d),
        Ok(_) => Err(format!(
            "'{text}' is longer than {longest}, the longest allowed"
        )),
        // humantime's own overflow message would not say what is allowed.
        Err(humantime::DurationError::NumberOverflow) => Err(format!(
            "'{text}' is longer than {longest}, the longest allowed"
        )),
        Err(e) => Err(format!(
            "'{text}' is not a duration such as 90s or 10m: {e}"
        )),
    }
}

/// `--repeat N`: a number of seconds, or a duration (`30s`, `1m`), from
/// [`MIN_PERIOD_SECS`] to [`MAX_PERIOD_SECS`].
fn parse_period(text: &str) -> std::result::Result<std::time::Duration, String> {
    let seconds = text.parse::<f64>().or_else(|_| {
        humantime::parse_duration(text)
            .map(|d| d.as_secs_f64())
            .map_err(|_| ())
    });
    match seconds {
        Ok(secs) if secs > MAX_PERIOD_SECS => Err(format!(
            "{text} seconds is more than the longest period, {MAX_PERIOD_SECS} (one day)"
        )),
        Ok(secs) if secs >= MIN_PERIOD_SECS => Ok(std::time::Duration::from_secs_f64(secs)),
        Ok(secs) if secs > 0.0 => Err(format!(
            "{text} seconds is less than the shortest period, {MIN_PERIOD_SECS}"
        )),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_period_is_neither_nothing_nor_forever() {
        assert_eq!(
            parse_period("0.5"),
            Ok(std::time::Duration::from_millis(500))
        );
        assert_eq!(
            parse_period("1e-300"),
            Err("1e-300 seconds is less than the shortest period, 0.1".into())
        );
        for bad in ["0", "-1", "NaN", "inf", "soon", "0s", "2days"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_period("10s"), Ok(std::time::Duration::from_secs(10)));
        assert_eq!(parse_period("1m"), Ok(std::time::Duration::from_secs(60)));
    }

    #[test]
    fn durations_are_bounded_where_they_are_parsed() {
        assert_eq!(parse_wait("10m"), Ok(std::time::Duration::from_secs(600)));
        assert_eq!(parse_wait("1day"), Ok(MAX_WAIT));
        for absurd in ["25h", "500000000000y", "99999999999999999999999s"] {
            assert_eq!(
                parse_wait(absurd),
                Err(format!(
                    "'{absurd}' is longer than 1day, the longest allowed"
                ))
            );
        }
        assert!(parse_wait("soon")
            .unwrap_err()
            .contains("is not a duration"));
        assert_eq!(parse_age("2h"), Ok(std::time::Duration::from_secs(7200)));
        assert!(parse_age("2y").is_err());
    }

    #[test]
    fn the_typed_command_leaves_out_the_global_options() {
        let typed = |line: &str| without_global_options(line.split(' ').map(String::from));
        assert_eq!(
            typed("--config /etc/c2.json connect main shop-1.5 --verbose"),
            ["connect", "main", "shop-1.5"]
        );
        assert_eq!(
            typed("start --config=/x.yaml shop-1.5.zip --await-slaves"),
            ["start", "shop-1.5.zip", "--await-slaves"]
        );
        assert_eq!(
            typed("lock acquire -m freeze"),
            ["lock", "acquire", "-m", "freeze"]
        );
    }
}
