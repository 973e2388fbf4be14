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
use patchwarden::signing::{self, Signer};
use patchwarden::state::AppState;
use patchwarden::{server, telemetry, upload};

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
enum PatchCommand {
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

fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "{} is empty", path.display());
    Ok(password)
}

fn keygen(
    config: &Config,
    password_file: Option<PathBuf>,
    unencrypted: bool,
    rotate: bool,
    old_password_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let configured = config.key_password.as_ref().map(|p| p.expose().to_owned());
    let password = match password_file {
        Some(path) => Some(read_secret_file(&path)?),
        None => configured,
    };
    let password = match (password, unencrypted) {
        (Some(_), true) => anyhow::bail!("--unencrypted contradicts the password given"),
        (None, false) => anyhow::bail!(
            "a password is required: set PATCHWARDEN_KEY_PASSWORD or pass --password-file (or --unencrypted, for development only)"
        ),
        (password, _) => password,
    };
    let dir = &config.keys_dir;
    if rotate {
        let old_password = match old_password_file {
            Some(path) => Some(read_secret_file(&path)?),
            None => password.clone(),
        };
        let at = patchwarden::domain::advisory::rfc3339(chrono::Utc::now());
        let (signer, rotation) = signing::rotate(dir, old_password, password, &at)?;
        println!("rotated: key {} replaces {}", signer.key_id(), rotation.old_key_id);
        println!(
            "the rotation statement, signed by the old key, is in {}",
            dir.join(format!("rotation-{}.txt", signer.key_id())).display()
        );
        println!("restart every instance to sign with the new key");
        print!("{}", signer.public_key().text);
    } else {
        let encrypted = password.is_some();
        let signer = Signer::generate(dir, password)?;
        println!(
            "created {} key {} in {}",
            if encrypted {
                "password-protected"
            } else {
                "UNENCRYPTED (development only)"
            },
            signer.key_id(),
            dir.display()
        );
        print!("{}", signer.public_key().text);
    }
    Ok(())
}

fn verify(config: &Config, file: PathBuf, sig: Option<PathBuf>, pubkey: Option<PathBuf>) -> anyhow::Result<()> {
    let sig = sig.unwrap_or_else(|| {
        let mut name = file.clone().into_os_string();
        name.push(".minisig");
        PathBuf::from(name)
    });
    let pubkey = pubkey.unwrap_or_else(|| config.keys_dir.join(signing::PUBLIC_KEY_FILE));
    let public = std::fs::read_to_string(&pubkey).with_context(|| format!("reading {}", pubkey.display()))?;
    let signature = std::fs::read_to_string(&sig).with_context(|| format!("reading {}", sig.display()))?;
    let data = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let verified = signing::verify(&public, std::io::BufReader::new(data), &signature)
        .map_err(|e| anyhow::anyhow!("{}: signature check FAILED: {e}", file.display()))?;
    println!("Signature and comment signature verified (key {})", verified.key_id);
    println!("Trusted comment: {}", verified.trusted_comment);
    Ok(())
}

fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config),
        Command::Keygen {
            password_file,
            unencrypted,
            rotate,
            old_password_file,
        } => keygen(&config, password_file, unencrypted, rotate, old_password_file),
        Command::Verify { file, sig, pubkey } => verify(&config, file, sig, pubkey),
        Command::Patch { action } => {
            let PatchCommand::Upload {
                server,
                token,
                product,
                version,
                platform,
                applies_to,
                fixes,
                file,
                publish,
                attempts,
                patch,
            } = *action;
            let target = match (patch, product, version) {
                (Some(id), _, _) => upload::Target::Existing(id),
                (None, Some(product), Some(version)) => upload::Target::New {
                    product,
                    version,
                    platform,
                    applies_to: applies_to
                        .iter()
                        .map(|r| upload::parse_range(r))
                        .collect::<anyhow::Result<_>>()?,
                    fixes,
                },
                _ => anyhow::bail!("patch upload needs --product and --version, or --patch"),
            };
            let request = upload::UploadRequest {
                server,
                token,
                target,
                file,
                publish,
                attempts: attempts.max(1),
            };
            actix_web::rt::System::new().block_on(upload::run(request))
        }
        Command::Migrate => {
            let applied = db::migrate(&config.database)?;
            for version in &applied {
                tracing::info!(migration = %version, "applied migration");
            }
            println!("{} migration(s) applied to {}", applied.len(), config.database);
            Ok(())
        }
        Command::Customer { action } => {
            let mut conn = open_db(&config)?;
            match action {
                CustomerCommand::Add { slug, name } => {
                    let customer = accounts::create_customer(&mut conn, &slug, &name).map_err(cli_error)?;
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
                    email, role, customer, ..
                } => {
                    let password = read_password()?;
                    let draft = UserDraft::new(&email, password, &role, customer).map_err(cli_error)?;
                    let mut conn = open_db(&config)?;
                    let user = accounts::create_user(&mut conn, &draft).map_err(cli_error)?;
                    println!("created user {} ({}, {})", user.email, user.role, user.id);
                }
                UserCommand::SetPassword { email, .. } => {
                    let password = NewPassword::parse(read_password()?).map_err(|e| anyhow::anyhow!("password {e}"))?;
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
                        accounts::issue_token(&mut conn, &user, &label, expires_in).map_err(cli_error)?;
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
    let listener = TcpListener::bind(bind).with_context(|| format!("listening on {bind} (setting `bind`)"))?;
    let database = config.database.to_string();
    actix_web::rt::System::new().block_on(async move {
        let state = AppState::build(config).await?;
        tracing::info!(address = %bind, database = %database, storage = state.storage.backend_name(), "patchwarden serving");
        let server = server::serve(actix_web::web::Data::new(state), listener)?;
        server.await.context("serving")
    })
}
