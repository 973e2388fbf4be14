//! `patchwarden-agent`: the reference device agent.
//!
//!   patchwarden-agent --config agent.toml                  one device
//!   patchwarden-agent --config agent.toml --simulate 500   a simulated fleet
//!   patchwarden-agent --config agent.toml install FILE --minisig SIG --proof PROOF
//!                                                          a patch brought in by hand
//!
//! The agent enrols (or uses its device token), polls on the interval the server
//! gives, verifies every download against its pinned keys before installing it,
//! reports each step and serves the pull endpoint. See `client::agent`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patchwarden::client::agent::simulate::{self, FleetSpec, Mix};
use patchwarden::client::agent::{http_client, stop_signal, Agent, AgentConfig, OfflineOutcome};
use patchwarden::domain::parse_duration;

#[derive(Parser)]
#[command(name = "patchwarden-agent", version, about = "The patchwarden device agent")]
struct Args {
    /// The agent's configuration file (TOML).
    #[arg(long, env = "PATCHWARDEN_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    /// Runs this many simulated devices in one process instead of one real one.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// Versions the simulated devices start on, handed out in turn (comma separated;
    /// default: the configuration's version).
    #[arg(long, value_delimiter = ',')]
    versions: Vec<String>,
    /// Behaviour shares of the simulated fleet, e.g.
    /// `honest=80,slow=5,fails_install=5,claims_only=4,silent=3,unknown_image=3`.
    #[arg(long, default_value = "honest=1")]
    mix: Mix,
    /// Where simulated devices keep their state (default: beside the configured state file).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The base URL the server reaches the simulated pull endpoints by (devices
    /// answer on `/d/{n}`, statistics on `/stats`); needs `pull_listen`.
    #[arg(long)]
    pull_base_url: Option<String>,
    /// How long a `slow` simulated device takes to install, in seconds.
    #[arg(long, default_value_t = 60)]
    slow_install_s: u64,
    /// Simulated devices start spread over this many seconds.
    #[arg(long, default_value_t = 10)]
    start_spread_s: u64,
    /// `fails_install` devices fail only installs of these versions (a bad build;
    /// comma separated; default: every install).
    #[arg(long, value_delimiter = ',')]
    fail_versions: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Installs a patch brought in by hand, reaching no server: the file is checked
    /// against its minisign signature and the C2SP tlog-proof of its publication
    /// (`GET /api/v1/patches/{id}/proof`) — signature, trusted comment, log entry,
    /// inclusion, yanked patches and, with `witness_policy`, the witnesses' quorum.
    /// Exits 1 when it is refused or the install fails.
    Install {
        /// The patch file.
        file: PathBuf,
        /// Its minisign signature (`GET /api/v1/patches/{id}/minisig`).
        #[arg(long)]
        minisig: PathBuf,
        /// The tlog-proof of its publication.
        #[arg(long)]
        proof: PathBuf,
        /// The oldest a proof's head (and each cosignature counted) may be: what it
        /// says of yanked patches is no older than this.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        max_age: Duration,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PATCHWARDEN_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let path = args
        .config
        .context("the agent's configuration file is needed (--config or PATCHWARDEN_AGENT_CONFIG)")?;
    let config = AgentConfig::load(&path)?;
    if let Some(Command::Install {
        file,
        minisig,
        proof,
        max_age,
    }) = args.command
    {
        let read =
            |path: &PathBuf| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
        let (signature, proof) = (read(&minisig)?, read(&proof)?);
        let http = http_client(&config)?;
        let mut agent = Agent::open(config, http)?;
        return match agent.install_offline(&file, &signature, &proof, max_age).await? {
            OfflineOutcome::Installed(running) => {
                println!("installed {} (version {})", file.display(), running.version);
                Ok(())
            }
            OfflineOutcome::Refused(why) | OfflineOutcome::InstallFailed(why) => anyhow::bail!(why),
        };
    }
    let Some(count) = args.simulate else {
        let agent = Agent::start(config).await?;
        return agent.run(stop_signal()).await;
    };
    let work_dir = args.work_dir.unwrap_or_else(|| {
        config
            .state_file
            .parent()
            .map(|p| p.join("simulated"))
            .unwrap_or_else(|| PathBuf::from("simulated"))
    });
    let pull = match (config.pull_listen, args.pull_base_url) {
        (Some(listen), base) => Some((listen, base)),
        (None, Some(_)) => anyhow::bail!("--pull-base-url needs pull_listen in the configuration"),
        (None, None) => None,
    };
    let versions = if args.versions.is_empty() {
        vec![config.version.clone()]
    } else {
        args.versions
    };
    let spec = FleetSpec {
        base: config,
        count,
        versions,
        mix: args.mix,
        work_dir,
        pull,
        slow_install: Duration::from_secs(args.slow_install_s),
        start_spread: Duration::from_secs(args.start_spread_s),
        fails_only: args.fail_versions,
    };
    let fleet = simulate::start(spec).await?;
    if let Some(address) = fleet.pull_address {
        tracing::info!(%address, "simulated devices answer pulls on /d/{{n}}, statistics on /stats");
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let s = fleet.snapshot();
                tracing::info!(
                    enrolled = s.enrolled, polls = s.polls, offered = s.offered, installed = s.installed,
                    failed = s.install_failed, refused = s.refused, "simulated fleet"
                );
            }
            () = &mut stop => return Ok(()),
        }
    }
}
