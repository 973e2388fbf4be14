//! The command line: parses, calls services, prints. `serve` runs the server with
//! the job runner; the other commands bootstrap accounts, manage keys, verify
//! downloads, upload patches and run a job once.

mod audit;
mod demo;
mod fleet;
mod keys;
mod people;
mod witness;

use std::io::BufRead;
use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use patchwarden::config::Config;
use patchwarden::db::{self, Db};
use patchwarden::domain::Scope;
use patchwarden::jobs::{self, Job};
use patchwarden::server;
use patchwarden::services::fleet::flush::flush;
use patchwarden::services::pulls;
use patchwarden::services::{ServiceError, Services};
use patchwarden::state::AppState;

#[derive(Parser)]
#[command(
    name = "patchwarden",
    version,
    about = "Security advisory and patch distribution server"
)]
pub struct Cli {
    /// TOML configuration file; `PATCHWARDEN_<NAME>` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (migrations are applied first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the signing key pair under `keys_dir`, or rotate it.
    Keygen {
        /// Read the new key's password from this file instead of PATCHWARDEN_KEY_PASSWORD.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Store the secret key without a password (development only).
        #[arg(long)]
        unencrypted: bool,
        /// Replace the current key; the old key signs a statement introducing the new one.
        #[arg(long)]
        rotate: bool,
        /// The current key's password file when rotating, if it differs from the new one.
        #[arg(long, value_name = "FILE")]
        old_password_file: Option<PathBuf>,
        /// With --rotate: the old key leaked. The statement declares it compromised
        /// after the log's current size, so what it signs past that is refused.
        #[arg(long)]
        compromised: bool,
    },
    /// Verify a downloaded advisory or patch against its minisign signature.
    Verify {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The signature; `<file>.minisig` when absent.
        #[arg(long, value_name = "FILE")]
        sig: Option<PathBuf>,
        /// The public key; the server's own `keys_dir/patchwarden.pub` when absent.
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
    },
    /// Work with patches on a running server.
    Patch {
        #[command(subcommand)]
        action: Box<PatchCommand>,
    },
    /// Manage customers.
    Customer {
        #[command(subcommand)]
        action: CustomerCommand,
    },
    /// Manage devices.
    Device {
        #[command(subcommand)]
        action: DeviceCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Pull one device's version now, as its schedule would, and print what was
    /// observed (JSON).
    Pull {
        #[arg(long, value_name = "ID")]
        device: String,
    },
    /// Register and list release image hashes (what an untampered device runs).
    Image {
        #[command(subcommand)]
        action: ImageCommand,
    },
    /// Run a demonstration: a fresh SQLite database in its own directory, seeded with a
    /// vendor, two customers, the ScreenOS emergency advisory, its fixes and a
    /// simulated fleet; prints the URL and the logins. Listens on `bind`.
    Demo {
        /// The demo's own directory, replaced on every run.
        #[arg(long, default_value = "data/demo", value_name = "DIR")]
        dir: PathBuf,
        /// How many simulated devices, split between the two customers.
        #[arg(long, default_value_t = 300)]
        devices: usize,
    },
    /// Audit a server's transparency log from outside (what a customer's security
    /// team runs from cron), or check an evidence bundle offline. Exits 1 when
    /// anything is wrong, naming it.
    Audit {
        /// The server's URL, e.g. https://updates.example.com
        #[arg(long, env = "PATCHWARDEN_SERVER", required_unless_present = "bundle")]
        server: Option<url::Url>,
        /// The vendor's public key (minisign `.pub`), the one thing trusted.
        #[arg(long, value_name = "FILE")]
        pubkey: PathBuf,
        /// Keeps the last head trusted; the next run checks the log extends it.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// An API token: the patches it may see are checked against the log too.
        #[arg(long, env = "PATCHWARDEN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Check this evidence bundle offline instead of a server.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["server", "state", "token"])]
        bundle: Option<PathBuf>,
        /// A C2SP tlog-policy file: the head must carry its witnesses' quorum.
        #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
        witness_policy: Option<PathBuf>,
    },
    /// Write the evidence bundle of an advisory for a customer (as
    /// `GET /api/v1/advisories/{id}/evidence` serves it to the customer's admins).
    Evidence {
        #[arg(long, value_name = "ID")]
        advisory: String,
        /// The customer's slug.
        #[arg(long)]
        customer: String,
        /// Where to write it; `<advisory>-<customer>-evidence.pwb` when absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run a witness (C2SP tlog-witness) for the named logs: it cosigns a log's
    /// checkpoint only when a consistency proof shows it extends the one it cosigned
    /// before, keeping that in a file under --data. Needs no database. Prints its
    /// verifier key and address, then serves until stopped.
    Witness {
        /// The address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Where the witness keeps its key and state.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// A log's note verifier key (`note_verifier_key` of `GET /api/v1/log/head`);
        /// repeat for each log witnessed.
        #[arg(long = "log", value_name = "VKEY", required = true)]
        logs: Vec<String>,
        /// The witness's name, given on first start (it is kept with the key).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a background job once, as the server's job runner would.
    Job {
        #[command(subcommand)]
        action: JobCommand,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Enrol many devices of a customer at once, all or none. Reads JSON lines, one
    /// device each, as `POST /api/v1/devices` takes it
    /// (`{"name","product","platform"?,"version"?,"labels"?}`); prints one JSON line
    /// per device with its id and token (shown only here).
    Import {
        #[arg(long)]
        customer: String,
        /// The JSON-lines file; `-` for standard input.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Register the SHA-256 of a release image of a product version.
    Add {
        #[arg(long)]
        product: String,
        #[arg(long)]
        version: String,
        #[arg(long, value_name = "HEX")]
        sha256: String,
        /// Only for this platform (any platform when absent).
        #[arg(long)]
        platform: Option<String>,
    },
    /// List a product's registered release images.
    List {
        #[arg(long)]
        product: String,
    },
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Run one job now: sweep-uploads or sweep-files.
    Run {
        #[arg(value_name = "JOB")]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PatchCommand {
    /// Create a patch on a server and upload its file, with progress; when the
    /// connection drops the upload resumes where the server's copy ends.
    Upload {
        /// The server's URL, e.g. https://updates.example.com
        #[arg(long, env = "PATCHWARDEN_SERVER")]
        server: url::Url,
        /// A vendor API token (prefer the environment variable to the command line).
        #[arg(long, env = "PATCHWARDEN_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long, required_unless_present = "patch")]
        product: Option<String>,
        /// The version the patch installs.
        #[arg(long, required_unless_present = "patch")]
        version: Option<String>,
        #[arg(long)]
        platform: Option<String>,
        /// A range the patch upgrades from, such as ">=6.3.0r12 <6.3.0r21"; repeatable.
        #[arg(long = "applies-to")]
        applies_to: Vec<String>,
        /// An advisory the patch fixes; repeatable.
        #[arg(long = "fixes")]
        fixes: Vec<String>,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Sign and publish once uploaded.
        #[arg(long)]
        publish: bool,
        /// Upload attempts in a row without progress before giving up.
        #[arg(long, default_value_t = 3)]
        attempts: u32,
        /// Upload the file of this existing draft instead of creating one; resumes the
        /// draft's unfinished upload of the same file.
        #[arg(long, conflicts_with_all = ["product", "version", "platform", "applies_to", "fixes"])]
        patch: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Create a customer.
    Add {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// List customers.
    List,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    Add {
        #[arg(long)]
        email: String,
        /// vendor-admin, vendor-publisher or customer-admin
        #[arg(long)]
        role: String,
        /// The customer's slug (customer-admin only).
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Replace a user's password, read from the first line of standard input. Every
    /// web session of the user ends; with --revoke-tokens its API tokens are revoked.
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Revoke the user's API tokens too (the password may have leaked with them).
        #[arg(long)]
        revoke_tokens: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it, once, on standard output.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "cli")]
        label: String,
        /// Lifetime such as `30d` or `12h`; no expiry when absent.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke an API token by id.
    Revoke {
        #[arg(long)]
        id: String,
    },
}

/// A service's refusal as a command-line failure, with the detail a 5xx body hides.
fn cli_error(err: ServiceError) -> anyhow::Error {
    match err {
        ServiceError::Internal(cause) => cause,
        other => anyhow::anyhow!("{other}"),
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

pub(crate) fn open_db(config: &Config) -> anyhow::Result<db::DbPooled> {
    let db = Db::open(&config.database, 1)?;
    db.conn().context("taking a database connection")
}

impl Command {
    /// Whether the command sends its log to a file of its own rather than standard
    /// error: the demo, whose terminal shows only its banner and progress.
    pub fn logs_to_file(&self) -> bool {
        matches!(self, Command::Demo { .. })
    }
}

pub fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config),
        Command::Witness {
            listen,
            data,
            logs,
            name,
        } => witness::run(listen, &data, &logs, name.as_deref()),
        Command::Audit {
            server,
            pubkey,
            state,
            token,
            bundle,
            witness_policy,
        } => audit::run(server, pubkey, state, token, bundle, witness_policy),
        Command::Evidence {
            advisory,
            customer,
            out,
        } => audit::evidence(config, advisory, customer, out),
        Command::Demo { dir, devices } => demo::run(&config, demo::DemoOptions { dir, devices }),
        Command::Job {
            action: JobCommand::Run { name },
        } => run_job(config, &name),
        Command::Pull { device } => actix_web::rt::System::new().block_on(async move {
            let services = Services::open(config).await?;
            let result = pulls::pull_now(&services, &Scope::Vendor, device)
                .await
                .map_err(cli_error)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }),
        Command::Image { action } => fleet::image(config, action),
        Command::Keygen {
            password_file,
            unencrypted,
            rotate,
            old_password_file,
            compromised,
        } => keys::keygen(
            &config,
            password_file,
            unencrypted,
            rotate,
            old_password_file,
            compromised,
        ),
        Command::Verify { file, sig, pubkey } => keys::verify(&config, file, sig, pubkey),
        Command::Patch { action } => fleet::upload(*action),
        Command::Migrate => {
            let applied = db::migrate(&config.database)?;
            for version in &applied {
                tracing::info!(migration = %version, "applied migration");
            }
            println!("{} migration(s) applied to {}", applied.len(), config.database);
            Ok(())
        }
        Command::Device {
            action: DeviceCommand::Import { customer, file },
        } => fleet::import(&config, &customer, &file),
        Command::Customer { action } => people::customer(&config, action),
        Command::User { action } => people::user(&config, action),
        Command::Token { action } => people::token(&config, action),
    }
}

/// Runs one background job once, on this configuration's database and storage.
fn run_job(config: Config, name: &str) -> anyhow::Result<()> {
    let job = Job::parse(name).with_context(|| {
        let names: Vec<&str> = Job::ALL.iter().map(|j| j.name()).collect();
        format!("there is no job `{name}` (jobs: {})", names.join(", "))
    })?;
    actix_web::rt::System::new().block_on(async move {
        let services = Services::open(config).await?;
        let count = jobs::run_once(&services, job).await.map_err(cli_error)?;
        println!("{}: {count} item(s)", job.name());
        Ok(())
    })
}

fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let listener = TcpListener::bind(bind).with_context(|| format!("listening on {bind} (setting `bind`)"))?;
    let database = config.database.to_string();
    actix_web::rt::System::new().block_on(async move {
        let state = actix_web::web::Data::new(AppState::build(config).await?);
        tracing::info!(address = %bind, database = %database, storage = state.storage.backend_name(), "patchwarden serving");
        server::warn_about_exposure(&state.config);
        let runner = jobs::start(state.clone().into_inner(), state.config.jobs);
        let server = server::serve(state.clone(), listener)?;
        let served = server.await.context("serving");
        // Jobs stop at once (a pull backlog must not hold up a shutdown; what they had
        // claimed lapses with its lease), then a clean stop writes what polls
        // observed since the last flush.
        drop(runner);
        match flush(&state).await {
            Ok(count) => tracing::info!(count, "wrote the observations still queued"),
            Err(err) => tracing::error!(error = %err, queued = state.fleet.queue.len(), "observations still queued could not be written"),
        }
        served
    })
}
