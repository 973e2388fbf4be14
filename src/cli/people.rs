//! Customers, users and API tokens from the shell.

use anyhow::Context;

use patchwarden::config::Config;
use patchwarden::db::models::{now, ApiToken, Customer, User};
use patchwarden::domain::{parse_duration, NewPassword};
use patchwarden::ids::TokenId;
use patchwarden::secrets::hash_password;
use patchwarden::services::accounts::{self, UserDraft};

use super::{cli_error, open_db, read_password, CustomerCommand, TokenCommand, UserCommand};

/// `patchwarden customer add|list`.
pub fn customer(config: &Config, action: CustomerCommand) -> anyhow::Result<()> {
    {
        let mut conn = open_db(config)?;
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
}

/// `patchwarden user add|set-password`.
pub fn user(config: &Config, action: UserCommand) -> anyhow::Result<()> {
    {
        match action {
            UserCommand::Add {
                email, role, customer, ..
            } => {
                let password = read_password()?;
                let draft = UserDraft::new(&email, password, &role, customer).map_err(cli_error)?;
                let mut conn = open_db(config)?;
                let user = accounts::create_user(&mut conn, &draft).map_err(cli_error)?;
                println!("created user {} ({}, {})", user.email, user.role, user.id);
            }
            UserCommand::SetPassword {
                email, revoke_tokens, ..
            } => {
                let password = NewPassword::parse(read_password()?).map_err(|e| anyhow::anyhow!("password {e}"))?;
                let hash = hash_password(&password)?;
                let mut conn = open_db(config)?;
                let changed = accounts::set_password(&mut conn, &email, &hash, revoke_tokens).map_err(cli_error)?;
                println!(
                    "password of {} replaced; {} session(s) ended, {} token(s) revoked",
                    email.trim().to_lowercase(),
                    changed.sessions_ended,
                    changed.tokens_revoked
                );
            }
        }
        Ok(())
    }
}

/// `patchwarden token create|revoke`.
pub fn token(config: &Config, action: TokenCommand) -> anyhow::Result<()> {
    {
        let mut conn = open_db(config)?;
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
                let (token, issued) = accounts::issue_token(&mut conn, &user, &label, expires_in).map_err(cli_error)?;
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
