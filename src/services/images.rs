//! Release image hashes: the vendor registers, per product version (and platform),
//! the SHA-256 of each image it built, so a device reporting an image that no
//! signed release explains can be flagged.

use serde::Deserialize;

use crate::db::models::{now, Product, ReleaseImage};
use crate::domain::event::Actor;
use crate::domain::patch::Platform;
use crate::domain::Caller;
use crate::ids::ReleaseImageId;
use crate::services::log;
use crate::services::{ServiceError, Services};

/// A release image as the vendor registers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDraft {
    pub version: String,
    pub image_sha256: String,
    #[serde(default)]
    pub platform: Option<String>,
}

/// Registers a release image of product `slug`; whether it was new.
pub async fn register(
    services: &Services,
    caller: &Caller,
    slug: String,
    draft: ImageDraft,
) -> Result<(ReleaseImage, bool), ServiceError> {
    if caller.scope.customer().is_some() {
        return Err(ServiceError::Forbidden(
            "release images are registered by the vendor".into(),
        ));
    }
    let registered = register_by(services, caller.actor(), slug, draft).await?;
    if registered.1 {
        tracing::info!(user.id = %caller.user, version = %registered.0.version, "registered release image");
    }
    Ok(registered)
}

/// Registers a release image of product `slug` on behalf of `by` (a user, or the
/// command line), and logs it when it is new; whether it was new.
pub async fn register_by(
    services: &Services,
    by: Actor,
    slug: String,
    draft: ImageDraft,
) -> Result<(ReleaseImage, bool), ServiceError> {
    let sha = draft.image_sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::invalid(
            "image_sha256",
            "image_sha256 must be 64 hex digits",
        ));
    }
    let platform = draft
        .platform
        .map(|p| p.parse::<Platform>().map_err(|e| ServiceError::invalid("platform", e)))
        .transpose()?
        .map(Platform::into_string)
        .unwrap_or_default();
    services
        .db
        .write(move |conn| {
            let product = Product::find_by_slug(conn, &slug)?.ok_or(ServiceError::NotFound("product"))?;
            let version = product
                .scheme()
                .parse(draft.version.trim())
                .map_err(|e| ServiceError::invalid("version", format!("not a {} version: {e}", product.scheme())))?
                .to_string();
            let image = ReleaseImage {
                id: ReleaseImageId::generate(),
                product_id: product.id.clone(),
                version,
                platform,
                image_sha256: sha,
                created_by: by.as_text(),
                created_at: now(),
            };
            let new = ReleaseImage::insert(conn, &image)?;
            if new {
                log::append(conn, &log::records::image(&product.slug, &image), &by)?;
            }
            Ok::<_, ServiceError>((image, new))
        })
        .await
}

/// The release images of product `slug`.
pub async fn list(services: &Services, slug: String) -> Result<Vec<ReleaseImage>, ServiceError> {
    services
        .db
        .run(move |conn| {
            let product = Product::find_by_slug(conn, &slug)?.ok_or(ServiceError::NotFound("product"))?;
            Ok(ReleaseImage::of_product(conn, &product.id)?)
        })
        .await
}
