//! Signing keys from the shell: `keygen` (and rotation) and `verify`.

use std::path::PathBuf;

use anyhow::Context;

use patchwarden::config::Config;
use patchwarden::secrets::sha256_hex;
use patchwarden::signing::{self, Signer};

fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "{} is empty", path.display());
    Ok(password)
}

pub fn keygen(
    config: &Config,
    password_file: Option<PathBuf>,
    unencrypted: bool,
    rotate: bool,
    old_password_file: Option<PathBuf>,
    compromised: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!compromised || rotate, "--compromised goes with --rotate");
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
        // A leaked key counts for what the log held when the leak was found, and no
        // further: the statement names that size.
        let compromised_after = if compromised {
            let mut conn = super::open_db(config)?;
            // Entries committed but not yet integrated count as held.
            patchwarden::services::log::integrate(&mut conn)
                .map_err(|e| anyhow::anyhow!("integrating the log: {e}"))?;
            Some(patchwarden::db::models::log::size(&mut conn).context("reading the log's size")?)
        } else {
            None
        };
        let (signer, rotation) = signing::rotate(dir, old_password, password, &at, compromised_after)?;
        println!("rotated: key {} replaces {}", signer.key_id(), rotation.old_key_id);
        if let Some(size) = compromised_after {
            println!(
                "key {} is declared compromised: devices and auditors refuse what it signs for a log of more than {size} entries",
                rotation.old_key_id
            );
        }
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

/// Verifies `file` against its minisign signature and, when the trusted comment
/// names the file's SHA-256 (patches: `sha256=`, advisories: `sha256:`), that it is
/// this file's. Says which check failed.
pub fn verify(config: &Config, file: PathBuf, sig: Option<PathBuf>, pubkey: Option<PathBuf>) -> anyhow::Result<()> {
    let sig = sig.unwrap_or_else(|| {
        let mut name = file.clone().into_os_string();
        name.push(".minisig");
        PathBuf::from(name)
    });
    let pubkey = pubkey.unwrap_or_else(|| config.keys_dir.join(signing::PUBLIC_KEY_FILE));
    let public = std::fs::read_to_string(&pubkey).with_context(|| format!("reading {}", pubkey.display()))?;
    let signature = std::fs::read_to_string(&sig).with_context(|| format!("reading {}", sig.display()))?;
    let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let verified = signing::verify(&public, std::io::Cursor::new(&data), &signature)
        .map_err(|e| anyhow::anyhow!("{}: signature check FAILED: {e}", file.display()))?;
    println!("Signature and comment signature verified (key {})", verified.key_id);
    println!("Trusted comment: {}", verified.trusted_comment);
    let actual = sha256_hex(&data);
    match signed_sha256(&verified.trusted_comment) {
        Some(named) if named.eq_ignore_ascii_case(&actual) => {
            println!("SHA-256 matches the trusted comment: {actual}");
            Ok(())
        }
        Some(named) => anyhow::bail!(
            "{}: SHA-256 check FAILED: the trusted comment names {named}, the file is {actual}",
            file.display()
        ),
        None => {
            println!("The trusted comment names no SHA-256; only the signature was checked");
            Ok(())
        }
    }
}

/// The SHA-256 a trusted comment names: `sha256=<hex>` or `sha256:<hex>`.
fn signed_sha256(comment: &str) -> Option<&str> {
    comment
        .split_whitespace()
        .find_map(|word| word.strip_prefix("sha256=").or_else(|| word.strip_prefix("sha256:")))
}

#[cfg(test)]
mod tests {
    use super::signed_sha256;

    #[test]
    fn finds_the_hash_in_both_comment_forms() {
        assert_eq!(
            signed_sha256("patchwarden patch id=x sha256=ab12 advisories=none"),
            Some("ab12")
        );
        assert_eq!(
            signed_sha256("patchwarden advisory PW-1 revision 1 published sha256:cd34"),
            Some("cd34")
        );
        assert_eq!(signed_sha256("no hash here"), None);
    }
}
