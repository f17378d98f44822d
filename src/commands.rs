//! Running a parsed command: dispatch to the modules that do the work.

use anyhow::{bail, Context, Result};

use crate::cli::{Cli, Command};
use crate::config::{DeployMode, LetsEncryptConfig, ProxyModeConfig, ToolConfig};
use crate::proxy::{self, Change};
use crate::{aws, completion, context, letsencrypt, log, noproxy, release, remote, shell, store};

const LONG_HELP: &str = include_str!("help.txt");
const DEFAULT_NGINX_TEMPLATE: &str = include_str!("../templates/nginx.conf.tpl");

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::RunChild { parent, command } => shell::exec_supervised(parent, &command),
        Command::Help => {
            print!("{LONG_HELP}");
            Ok(())
        }
        Command::Version => {
            println!("c2 {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::ShowDefaultNginxConfig => {
            print!("{DEFAULT_NGINX_TEMPLATE}");
            Ok(())
        }
        Command::ListReleases => {
            let config = ToolConfig::load(config_path)?;
            for name in store::open(&config.releases)?.list()? {
                println!("{name}");
            }
            Ok(())
        }
        Command::ShowLog => {
            let config = ToolConfig::load(config_path)?;
            let text = std::fs::read_to_string(&config.log_file)
                .with_context(|| format!("cannot read log file {}", config.log_file.display()))?;
            print!("{text}");
            Ok(())
        }
        Command::Status {
            show_slaves,
            json_output,
        } => {
            let config = ToolConfig::load(config_path)?;
            status(&config, show_slaves, json_output)
        }
        // Its output is a command for scripts (`$(c2 aws-docker-login-cmd)`):
        // no log lines on stdout, and the password nowhere else.
        Command::AwsDockerLoginCmd { registry_id } => {
            println!("{}", aws::ecr::login_command(registry_id.as_deref())?);
            Ok(())
        }
        Command::Completions { .. } => {
            use clap::CommandFactory;
            let commands: Vec<String> = Cli::command()
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name().to_string())
                .collect();
            print!("{}", completion::bash_script(&commands));
            Ok(())
        }
        Command::Complete { kind } => {
            // Completion must never print errors into the shell.
            if let Ok(config) = ToolConfig::load(config_path) {
                for name in completion::names(&config, &kind).unwrap_or_default() {
                    println!("{name}");
                }
            }
            Ok(())
        }
        Command::LeGetCerts => letsencrypt::get_certs(&LetsEncryptConfig::load()?),
        Command::LeAuthHook => letsencrypt::auth_hook(&LetsEncryptConfig::load()?),
        Command::LeCleanupHook => letsencrypt::cleanup_hook(&LetsEncryptConfig::load()?),
        mutating => {
            let config = ToolConfig::load(config_path)?;
            log::open_file(&config.log_file)?;
            run_mutating(&config, mutating)
        }
    }
}

/// Commands that change things: they log to the log file too.
fn run_mutating(config: &ToolConfig, command: Command) -> Result<()> {
    match command {
        Command::FetchContext { retry } => context::fetch(config, retry),
        Command::Unpack { release, todir } => {
            let store = store::open(&config.releases)?;
            store::check_release_name(&release)?;
            let infra = context::infrastructure(config)?;
            release::unpack(store.as_ref(), &release, &todir, &infra, None).map(|_| ())
        }
        Command::ExpandTemplate { template, dest } => {
            let infra = context::infrastructure(config)?;
            let ctx = serde_json::to_value(infra)?;
            release::expand_template(&template, &dest, &ctx)
        }
        Command::Start { release, deploy } => {
            store::check_release_name(&release)?;
            let store = store::open(&config.releases)?;
            match &config.deploy_mode {
                DeployMode::Noproxy => {
                    let _lock = proxy::lock(config)?;
                    noproxy::start(config, store.as_ref(), &release, deploy.as_deref())
                }
                DeployMode::Proxy(p) => {
                    let label = proxy::label_for(&release, deploy.as_deref())?;
                    proxy::check_release_exists(store.as_ref(), &release)?;
                    let change = Change::Start {
                        release: &release,
                        label: &label,
                    };
                    apply_change(config, p, store.as_ref(), change)
                }
            }
        }
        Command::Stop { deploy } => match &config.deploy_mode {
            DeployMode::Noproxy => {
                let _lock = proxy::lock(config)?;
                noproxy::stop(config, &deploy)
            }
            DeployMode::Proxy(p) => {
                let store = store::open(&config.releases)?;
                apply_change(config, p, store.as_ref(), Change::Stop { label: &deploy })
            }
        },
        Command::Connect { endpoint, deploy } => {
            let (p, store) = proxy_mode(config, "connect")?;
            let change = Change::Connect {
                endpoint: &endpoint,
                label: &deploy,
            };
            apply_change(config, p, store.as_ref(), change)
        }
        Command::Disconnect { endpoint } => {
            let (p, store) = proxy_mode(config, "disconnect")?;
            let change = Change::Disconnect {
                endpoint: &endpoint,
            };
            apply_change(config, p, store.as_ref(), change)
        }
        Command::RestartFrontendProxy => {
            let (p, store) = proxy_mode(config, "restart-frontend-proxy")?;
            proxy::restart_frontend(config, p, store.as_ref())
        }
        Command::ShutdownFrontendProxy => {
            let (p, store) = proxy_mode(config, "shutdown-frontend-proxy")?;
            proxy::shutdown_frontend(config, p, store.as_ref())
        }
        Command::GenerateSslCertificate => {
            let (p, store) = proxy_mode(config, "generate-ssl-certificate")?;
            proxy::generate_ssl_certificate(config, p, store.as_ref())
        }
        Command::SlaveUpdate { repeat } => {
            let (p, store) = proxy_mode(config, "slave-update")?;
            let remote = remote_store(p, "slave-update")?;
            let mut slave = remote::slave::Slave::new(config, p, store.as_ref(), remote)?;
            match repeat {
                None => slave.update_once(),
                Some(period) => slave.repeat(period),
            }
        }
        Command::SlaveFlush => {
            let (p, _) = proxy_mode(config, "slave-flush")?;
            remote::status::flush(remote_store(p, "slave-flush")?.as_ref())
        }
        other => unreachable!("{other:?} is dispatched in run()"),
    }
}

/// Applies a change to the master state (remote state) or to this machine.
fn apply_change(
    config: &ToolConfig,
    p: &ProxyModeConfig,
    store: &dyn store::ReleaseStore,
    change: Change,
) -> Result<()> {
    match p.remote_state_s3.as_option() {
        Some(location) => {
            remote::master::update(remote::store::open(location)?.as_ref(), p, change)
        }
        None => proxy::run_local(config, p, store, change),
    }
}

/// The remote state store, for commands that need one.
fn remote_store(p: &ProxyModeConfig, command: &str) -> Result<Box<dyn remote::store::RemoteStore>> {
    match p.remote_state_s3.as_option() {
        Some(location) => remote::store::open(location),
        None => {
            bail!("{command} needs remote state: set deployMode.proxy.remoteStateS3 in the config")
        }
    }
}

/// The proxy config and release store, for commands that need proxy mode.
fn proxy_mode<'a>(
    config: &'a ToolConfig,
    command: &str,
) -> Result<(&'a ProxyModeConfig, Box<dyn store::ReleaseStore>)> {
    match config.proxy_mode() {
        Some(p) => Ok((p, store::open(&config.releases)?)),
        None => bail!("{command} needs proxy mode (deployMode is noproxy in the config)"),
    }
}

fn status(config: &ToolConfig, show_slaves: bool, json_output: bool) -> Result<()> {
    match &config.deploy_mode {
        // [better] noproxy mode shows the current release instead of failing.
        DeployMode::Noproxy => {
            let current = noproxy::current_label(config)?;
            if json_output {
                println!("{}", serde_json::json!({ "current": current }));
            } else {
                match current {
                    Some(label) => println!("Current release: {label}"),
                    None => println!("Current release: (none)"),
                }
            }
            Ok(())
        }
        DeployMode::Proxy(p) => match p.remote_state_s3.as_option() {
            Some(location) => {
                let remote = remote::store::open(location)?;
                remote::status::print(remote.as_ref(), p, show_slaves, json_output)
            }
            None if show_slaves => {
                bail!("--show-slaves needs remote state: set deployMode.proxy.remoteStateS3 in the config")
            }
            None => proxy::status(config, p, json_output),
        },
    }
}
