//! The `patchwarden` command line: `serve`, `migrate`, and the operator commands
//! that bootstrap customers, users and API tokens from a shell.

#![forbid(unsafe_code)]

use std::io::BufRead;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use patchwarden::accounts::{self, UserDraft};
use patchwarden::config::{Config, RawSettings};
use patchwarden::db::models::{now, ApiToken, Customer, User};
use patchwarden::db::{self, Db};
use patchwarden::domain::{parse_duration, NewPassword};
use patchwarden::error::AppError;
use patchwarden::ids::TokenId;
use patchwarden::secrets::hash_password;
use patchwarden::state::AppState;
use patchwarden::{server, telemetry};

#[derive(Parser)]
#[command(
    name = "patchwarden",
    version,
    about = "Security advisory and patch distribution server"
)]
struct Cli {
    /// TOML configuration file; `PATCHWARDEN_<NAME>` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrations are applied first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage customers.
    Customer {
        #[command(subcommand)]
        action: CustomerCommand,
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
}

#[derive(Subcommand)]
enum CustomerCommand {
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
enum UserCommand {
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
    /// Replace a user's password, read from the first line of standard input.
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match RawSettings::load(cli.config.as_deref()).and_then(|raw| raw.validate()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("patchwarden: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    match run(cli.command, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("patchwarden: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// An [`AppError`] as a command-line failure, with the detail a 5xx body hides.
fn cli_error(err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(cause) => cause,
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

fn open_db(config: &Config) -> anyhow::Result<db::DbPooled> {
    let db = Db::open(&config.database, 1)?;
    db.conn().context("taking a database connection")
}

fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config),
        Command::Migrate => {
            let applied = db::migrate(&config.database)?;
            println!(
                "{} migration(s) applied to {}",
                applied.len(),
                config.database
            );
            Ok(())
        }
        Command::Customer { action } => {
            let mut conn = open_db(&config)?;
            match action {
                CustomerCommand::Add { slug, name } => {
                    let customer =
                        accounts::create_customer(&mut conn, &slug, &name).map_err(cli_error)?;
                    println!("created customer {} ({})", customer.slug, customer.id);
                }
                CustomerCommand::List => {
                    for customer in Customer::list(&mut conn)? {
                        println!("{}\t{}\t{}", customer.slug, customer.id, customer.name);
                    }
                }
            }
            Ok(())
        }
        Command::User { action } => {
            match action {
                UserCommand::Add {
                    email,
                    role,
                    customer,
                    ..
                } => {
                    let password = read_password()?;
                    let draft =
                        UserDraft::new(&email, password, &role, customer).map_err(cli_error)?;
                    let mut conn = open_db(&config)?;
                    let user = accounts::create_user(&mut conn, &draft).map_err(cli_error)?;
                    println!("created user {} ({}, {})", user.email, user.role, user.id);
                }
                UserCommand::SetPassword { email, .. } => {
                    let password = NewPassword::parse(read_password()?)
                        .map_err(|e| anyhow::anyhow!("password {e}"))?;
                    let hash = hash_password(&password)?;
                    let mut conn = open_db(&config)?;
                    let user = User::find_by_email(&mut conn, &email.trim().to_lowercase())?
                        .with_context(|| format!("there is no user `{email}`"))?;
                    User::set_password_hash(&mut conn, &user.id, &hash)?;
                    println!("password of {} replaced", user.email);
                }
            }
            Ok(())
        }
        Command::Token { action } => {
            let mut conn = open_db(&config)?;
            match action {
                TokenCommand::Create {
                    email,
                    label,
                    expires_in,
                } => {
                    let expires_in = expires_in
                        .as_deref()
                        .map(parse_duration)
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
                    let user = User::find_by_email(&mut conn, &email.trim().to_lowercase())?
                        .with_context(|| format!("there is no user `{email}`"))?;
                    let (token, issued) =
                        accounts::issue_token(&mut conn, &user, &label, expires_in)
                            .map_err(cli_error)?;
                    eprintln!("token {} for {}", token.id, user.email);
                    println!("{}", issued.plaintext());
                }
                TokenCommand::Revoke { id } => {
                    let id: TokenId = id.parse().map_err(|e| anyhow::anyhow!("--id: {e}"))?;
                    match ApiToken::revoke(&mut conn, &id, now())? {
                        0 => anyhow::bail!("no active token with id {id}"),
                        _ => println!("revoked token {id}"),
                    }
                }
            }
            Ok(())
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let listener =
        TcpListener::bind(bind).with_context(|| format!("listening on {bind} (setting `bind`)"))?;
    let database = config.database.to_string();
    let state = AppState::build(config)?;
    tracing::info!(address = %bind, database = %database, "patchwarden serving");
    actix_web::rt::System::new().block_on(async move {
        let server = server::serve(actix_web::web::Data::new(state), listener)?;
        server.await
    })?;
    Ok(())
}
