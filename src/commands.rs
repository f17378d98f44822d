//! Running a parsed command: one arm per command, each handing over to the
//! module that does the work. Deploy commands go through the mode's
//! [`Target`](crate::target::Target), resolved once from the config.

use anyhow::{bail, Context, Result};

use crate::cli::{AwaitSlaves, Cli, Command, DryRun, LockAction, TokenAction};
use crate::config::{LetsEncryptConfig, ProxyModeConfig, RemoteLocation, ToolConfig};
use crate::deploy::Deployer;
use crate::journal::{self, record, By};
use crate::names::{DeployLabel, ReleaseName};
use crate::proxy::Machine;
use crate::remote::{self, store::RemoteStore};
use crate::store::{self, ReleaseStore};
use crate::target::{self, Change, Target};
use crate::{
    api, aws, completion, context, door, heal, help, letsencrypt, log, output, prune, publish,
    release, shell,
};

const DEFAULT_NGINX_TEMPLATE: &str = include_str!("../templates/nginx.conf.tpl");

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let path = cli.config.as_deref();
    match cli.command {
        Command::RunChild { parent, command } => shell::exec_supervised(parent, &command),
        Command::Forward { stream } => shell::forward(stream),
        Command::Help { command } => {
            let text = match command {
                None => help::all(),
                Some(name) => help::one(&name)?,
            };
            Ok(output::print(&text)?)
        }
        Command::Version => Ok(output::line(&format!("c2 {}", crate::cli::VERSION))?),
        Command::ManPages { dir } => {
            for page in crate::manpages::write(&dir)? {
                output::line(&page.display().to_string())?;
            }
            Ok(())
        }
        Command::ShowDefaultNginxConfig => Ok(output::print(DEFAULT_NGINX_TEMPLATE)?),
        Command::ListReleases => {
            for name in Run::read_only(path)?.store.list()? {
                output::line(name.as_str())?;
            }
            Ok(())
        }
        Command::ShowLog => {
            let run = Run::read_only(path)?;
            let file = &run.config.log_file;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read log file {}", file.display()))?;
            Ok(output::print(&text)?)
        }
        Command::Status {
            show_slaves,
            json_output,
        } => {
            let run = Run::read_only(path)?;
            let target = run.target()?;
            let status = target.status(show_slaves)?;
            match json_output {
                true => output::json(&status.json()),
                false => Ok(output::print(&status.text())?),
            }
        }
        // Its output is a command for scripts (`$(c2 aws-docker-login-cmd)`):
        // no log lines on stdout, and the password nowhere else.
        Command::AwsDockerLoginCmd { registry_id } => {
            let command = aws::ecr::login_command(registry_id.as_deref())?;
            Ok(output::line(&command)?)
        }
        Command::Completions { shell } => Ok(output::print(&completion::registration(&shell)?)?),
        Command::LeGetCerts => letsencrypt::get_certs(&LetsEncryptConfig::load()?),
        Command::LeAuthHook => letsencrypt::auth_hook(&LetsEncryptConfig::load()?),
        Command::LeCleanupHook => letsencrypt::cleanup_hook(&LetsEncryptConfig::load()?),
        Command::FetchContext { retry, timeout } => {
            let missing = match retry {
                true => context::Missing::Wait(timeout),
                false => context::Missing::Fail,
            };
            context::fetch(&Run::mutating(path)?.config, missing)
        }
        Command::Unpack { release, todir } => {
            let release = ReleaseName::parse(&release)?;
            let run = Run::mutating(path)?;
            run.deployer().unpack(&release, &todir, None).map(|_| ())
        }
        Command::ExpandTemplate { template, dest } => {
            let run = Run::mutating(path)?;
            let ctx = serde_json::to_value(context::infrastructure(&run.config)?)?;
            let how = release::Expansion::of(&run.config);
            release::expand_template(&template, &dest, &ctx, &how)
        }
        Command::Start {
            release,
            deploy,
            plan,
            fleet,
        } => {
            let release = ReleaseName::parse(&release)?;
            let label = match deploy {
                Some(d) => DeployLabel::parse(&d)?,
                None => release.default_label()?,
            };
            let change = Change::Start {
                release: &release,
                label: &label,
            };
            through_the_door(path, change, plan, fleet)
        }
        Command::Stop {
            deploy,
            plan,
            fleet,
        } => through_the_door(path, Change::Stop { label: &deploy }, plan, fleet),
        Command::Connect {
            endpoint,
            deploy,
            force,
            plan,
            fleet,
        } => {
            let change = Change::Connect {
                endpoint: &endpoint,
                label: &deploy,
                force,
            };
            through_the_door(path, change, plan, fleet)
        }
        Command::Disconnect {
            endpoint,
            plan,
            fleet,
        } => {
            let change = Change::Disconnect {
                endpoint: &endpoint,
            };
            through_the_door(path, change, plan, fleet)
        }
        Command::Rollback {
            endpoint,
            force,
            plan,
            fleet,
        } => {
            let change = Change::Rollback {
                endpoint: endpoint.as_deref(),
                force,
            };
            through_the_door(path, change, plan, fleet)
        }
        Command::Lock { action } => match action {
            LockAction::Acquire { message } => {
                let run = Run::mutating(path)?;
                let journal = journal::open(&run.config);
                let transition = journal::acquire(journal.as_ref(), &message, &By::Shell)?;
                record(
                    journal.as_ref(),
                    &By::Shell,
                    journal::acquire_words(&message),
                    transition,
                );
                Ok(())
            }
            LockAction::Release => {
                let run = Run::mutating(path)?;
                let journal = journal::open(&run.config);
                let transition = journal::release(journal.as_ref())?;
                record(
                    journal.as_ref(),
                    &By::Shell,
                    journal::release_words(),
                    transition,
                );
                Ok(())
            }
            LockAction::Status { json_output } => {
                let run = Run::read_only(path)?;
                let lock = journal::current_lock(journal::open(&run.config).as_ref())?;
                match (json_output, lock) {
                    (true, lock) => output::json(&lock),
                    (false, Some(lock)) => {
                        Ok(output::line(&format!("locked by {}", lock.holder()))?)
                    }
                    (false, None) => Ok(output::line("unlocked")?),
                }
            }
        },
        Command::History { limit, json_output } => {
            let run = Run::read_only(path)?;
            let events = journal::open(&run.config).recent(limit)?;
            if json_output {
                return output::json(&events);
            }
            for event in events {
                output::line(&event.line())?;
            }
            Ok(())
        }
        Command::RestartFrontendProxy => {
            let run = Run::mutating(path)?;
            run.machine("restart-frontend-proxy")?.restart_frontend()
        }
        Command::ShutdownFrontendProxy => {
            let run = Run::mutating(path)?;
            run.machine("shutdown-frontend-proxy")?.shutdown_frontend()
        }
        Command::GenerateSslCertificate => {
            let run = Run::mutating(path)?;
            run.machine("generate-ssl-certificate")?
                .generate_ssl_certificate()
        }
        Command::Publish {
            path: dir,
            name,
            force,
        } => {
            let run = Run::read_only(path)?;
            publish::publish(
                &run.config,
                run.store.as_ref(),
                &dir,
                name.as_deref(),
                force,
            )
        }
        Command::Prune { keep, dry_run } => {
            let run = Run::read_only(path)?;
            prune::prune(&run.config, run.store.as_ref(), keep, dry_run)
        }
        Command::SlaveUpdate { repeat } => {
            let run = Run::mutating(path)?;
            let (proxy, remote) = run.remote("slave-update")?;
            let mut slave =
                remote::slave::Slave::new(&run.config, proxy, run.store.as_ref(), remote)?;
            match repeat {
                None => slave.update_once(),
                Some(period) => slave.repeat(period),
            }
        }
        Command::Heal { repeat } => {
            let run = Run::mutating(path)?;
            let proxy = run.proxy("heal")?;
            if proxy.remote_state_s3.is_some() {
                bail!("heal watches a machine with local state; with remote state, slave-update watches each machine's deploys");
            }
            heal::heal(&run.machine("heal")?, repeat)
        }
        Command::Serve {
            listen,
            insecure_http,
        } => {
            let run = Run::mutating(path)?;
            api::serve(
                run.config,
                api::Listen {
                    addr: listen,
                    insecure_http,
                },
            )
        }
        Command::ApiToken { action } => {
            let run = Run::read_only(path)?;
            let file = &run.config.api.tokens_file;
            match action {
                TokenAction::Add { name, role } => {
                    let token = api::tokens::add(file, &name, role)?;
                    Ok(output::line(&token)?)
                }
                TokenAction::List => {
                    for entry in api::tokens::Tokens::load(file)?.entries() {
                        output::line(&format!("{} {}", entry.name, entry.role))?;
                    }
                    Ok(())
                }
                TokenAction::Remove { name } => api::tokens::remove(file, &name),
            }
        }
        Command::SlaveFlush { older_than } => {
            let run = Run::mutating(path)?;
            let remote = run.remote("slave-flush")?.1;
            if remote.reports_expire() {
                log::info(&format!(
                    "Nothing to flush: at {} a slave's report disappears by itself once the slave stops",
                    remote.describe()
                ));
                return Ok(());
            }
            remote::status::flush(remote.as_ref(), older_than)
        }
        Command::RemoteCopy { from, to, force } => {
            let run = Run::mutating(path)?;
            let from = remote::store::open(&run.config.remote_location(&from)?);
            let to = remote::store::open(&run.config.remote_location(&to)?);
            remote::copy::copy(from.as_ref(), to.as_ref(), force)
        }
    }
}

/// A change of deploys from the command line, through the one door the API
/// uses too: `--dry-run` prints the plan (with no log file), else the
/// change is made.
fn through_the_door(
    path: Option<&std::path::Path>,
    change: Change,
    plan: DryRun,
    fleet: AwaitSlaves,
) -> Result<()> {
    let run = match plan.dry_run {
        true => Run::read_only(path)?,
        false => Run::mutating(path)?,
    };
    let ask = door::Ask {
        change,
        dry_run: plan.dry_run,
        fleet: fleet.await_slaves.then_some(door::Wait {
            min_slaves: fleet.min_slaves,
            timeout: fleet.timeout,
        }),
        by: By::Shell,
    };
    match door::change(&run.config, run.store.as_ref(), &ask)? {
        door::Done::Planned(lines) => {
            for line in lines {
                output::line(&line)?;
            }
            Ok(())
        }
        door::Done::Made => Ok(()),
    }
}

/// One run of a command that needs the tool config: the config and the
/// release store it names.
struct Run {
    config: ToolConfig,
    store: Box<dyn ReleaseStore>,
}

impl Run {
    /// For commands that only read: they write nothing but stdout.
    fn read_only(path: Option<&std::path::Path>) -> Result<Run> {
        let config = ToolConfig::load(path)?;
        let store = store::open(&config.releases);
        Ok(Run { config, store })
    }

    /// For commands that change things: they also append to the log file.
    fn mutating(path: Option<&std::path::Path>) -> Result<Run> {
        let run = Run::read_only(path)?;
        log::open_file(&run.config.log_file)?;
        Ok(run)
    }

    fn target(&self) -> Result<Box<dyn Target + '_>> {
        target::open(&self.config, self.store.as_ref())
    }

    fn deployer(&self) -> Deployer<'_> {
        Deployer {
            config: &self.config,
            store: self.store.as_ref(),
        }
    }

    fn proxy(&self, command: &str) -> Result<&ProxyModeConfig> {
        match self.config.proxy_mode() {
            Some(p) => Ok(p),
            None => bail!("{command} needs proxy mode (deployMode is noproxy in the config)"),
        }
    }

    /// This machine's proxy, for commands that act on it in any proxy mode.
    fn machine(&self, command: &str) -> Result<Machine<'_>> {
        Ok(Machine::new(
            &self.config,
            self.proxy(command)?,
            self.store.as_ref(),
        ))
    }

    /// The remote state, for commands that need one.
    fn remote(&self, command: &str) -> Result<(&ProxyModeConfig, Box<dyn RemoteStore>)> {
        let proxy = self.proxy(command)?;
        let location: &RemoteLocation = match &proxy.remote_state_s3 {
            Some(l) => l,
            None => bail!(
                "{command} needs remote state: set deployMode.proxy.remoteStateS3 in the config"
            ),
        };
        Ok((proxy, remote::store::open(location)))
    }
}
