//! The command tree: every command, argument and help text, defined once.
//! `commands` runs them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "c2",
    version,
    about = "Deploy software releases onto servers (Camus2-compatible)",
    disable_help_subcommand = true,
    after_help = "Run `c2 help` for what each command does."
)]
pub struct Cli {
    /// The config file (default: $CAMUS2_CONFIG, else ../etc/camus2.json|yaml beside c2)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Also show what the libraries c2 uses (the AWS SDK) report, on stderr;
    /// `RUST_LOG` (e.g. `aws_config=debug`) chooses what instead
    #[arg(long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what each command does
    Help,
    /// Show the version
    Version,
    /// List releases in the release store, most recent first
    ListReleases,
    /// Print the log file
    ShowLog,
    /// Print the built-in nginx.conf template
    ShowDefaultNginxConfig,
    /// Fetch the infrastructure context into the context cache
    FetchContext {
        /// Wait for each source to exist, checking every 10 seconds
        #[arg(long)]
        retry: bool,
    },
    /// Download, unzip and expand the templates of a release into a directory
    Unpack { release: String, todir: PathBuf },
    /// Render one template with the infrastructure context
    ExpandTemplate { template: PathBuf, dest: PathBuf },
    /// Print a `docker login` command for AWS ECR
    AwsDockerLoginCmd {
        #[arg(value_name = "REGISTRY_ID")]
        registry_id: Option<String>,
    },
    /// Deploy a release (noproxy: replace the live release)
    Start {
        release: String,
        #[arg(value_name = "DEPLOY")]
        deploy: Option<String>,
    },
    /// Stop a deploy
    Stop { deploy: String },
    /// Show endpoints and deploys
    Status {
        /// Also show every slave's report (remote state)
        #[arg(long)]
        show_slaves: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json_output: bool,
    },
    /// Route an endpoint to a deploy
    Connect { endpoint: String, deploy: String },
    /// Stop routing an endpoint
    Disconnect { endpoint: String },
    /// Rewrite the nginx config and reload the frontend proxy
    RestartFrontendProxy,
    /// Stop the frontend proxy
    ShutdownFrontendProxy,
    /// Request a Let's Encrypt certificate for the https endpoints
    GenerateSslCertificate,
    /// Make this machine match the master state (remote state)
    SlaveUpdate {
        /// Repeat forever, one update every N seconds (decimals allowed)
        #[arg(long, value_name = "N", value_parser = parse_period)]
        repeat: Option<std::time::Duration>,
    },
    /// Delete slave reports older than 5 minutes
    SlaveFlush,
    /// Get certificates with certbot through Route53 DNS-01
    LeGetCerts,
    /// certbot's manual auth hook: create the DNS-01 TXT record
    LeAuthHook,
    /// certbot's manual cleanup hook: delete the DNS-01 TXT record
    LeCleanupHook,
    /// Print a shell completion script: eval "$(c2 completions bash)"
    Completions {
        #[arg(value_parser = ["bash"])]
        shell: String,
    },
    /// Names for completion: releases, deploys or endpoints
    #[command(name = "__complete", hide = true)]
    Complete { kind: String },
    /// Run a release command that dies with c2 (c2 starts every one this way)
    #[command(name = crate::shell::RUN_CHILD, hide = true)]
    RunChild {
        parent: u32,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// `--repeat N`: a positive number of seconds.
fn parse_period(text: &str) -> std::result::Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(std::time::Duration::from_secs_f64(secs)),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}
