//! Fleet and patch commands: importing devices, registering release images,
//! uploading a patch.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use patchwarden::config::Config;
use patchwarden::services::fleet::devices::{self, DeviceDraft};
use patchwarden::services::images::{self, ImageDraft};
use patchwarden::services::keys;
use patchwarden::services::outbound::Outbound;
use patchwarden::services::Services;

use super::{cli_error, open_db, ImageCommand, PatchCommand};

/// `patchwarden image add|list`.
pub fn image(config: Config, action: ImageCommand) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let services = Services::open(config).await?;
        match action {
            ImageCommand::Add {
                product,
                version,
                sha256,
                platform,
            } => {
                let draft = ImageDraft {
                    version,
                    image_sha256: sha256,
                    platform,
                };
                let (image, new) =
                    images::register_by(&services, patchwarden::domain::event::Actor::Cli, product, draft)
                        .await
                        .map_err(cli_error)?;
                let verb = if new { "registered" } else { "already registered:" };
                println!("{verb} {} {} {}", image.version, image.image_sha256, image.platform);
            }
            ImageCommand::List { product } => {
                for image in images::list(&services, product).await.map_err(cli_error)? {
                    println!("{}\t{}\t{}", image.version, image.platform, image.image_sha256);
                }
            }
        }
        Ok(())
    })
}

/// `patchwarden patch upload`.
pub fn upload(action: PatchCommand) -> anyhow::Result<()> {
    {
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
        } = action;
        let target = match (patch, product, version) {
            (Some(id), _, _) => patchwarden::client::upload::Target::Existing(id),
            (None, Some(product), Some(version)) => patchwarden::client::upload::Target::New {
                product,
                version,
                platform,
                applies_to: applies_to
                    .iter()
                    .map(|r| patchwarden::client::upload::parse_range(r))
                    .collect::<anyhow::Result<_>>()?,
                fixes,
            },
            _ => anyhow::bail!("patch upload needs --product and --version, or --patch"),
        };
        let request = patchwarden::client::upload::UploadRequest {
            server,
            token,
            target,
            file,
            publish,
            attempts: attempts.max(1),
        };
        actix_web::rt::System::new().block_on(patchwarden::client::upload::run(request))
    }
}

/// `patchwarden device import`: one JSON device per line, from a file or `-`.
pub fn import(config: &Config, customer: &str, file: &Path) -> anyhow::Result<()> {
    {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        let mut drafts = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            drafts.push(serde_json::from_str::<DeviceDraft>(line).with_context(|| format!("line {}", n + 1))?);
        }
        let mut conn = open_db(config)?;
        let sealing = keys::open_sealing(&config.secrets_key_file, &mut conn)?;
        let outbound = Outbound::for_pulls(config)?;
        let enrolled = devices::import(&mut conn, &sealing, &outbound, customer, drafts).map_err(cli_error)?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for device in &enrolled {
            let line = serde_json::json!({
                "id": device.device.id,
                "name": device.device.name,
                "token": device.token.plaintext(),
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        eprintln!("enrolled {} device(s) for {customer}", enrolled.len());
        Ok(())
    }
}
