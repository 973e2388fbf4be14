//! The CSAF 2.0 trusted provider's reads: the distribution of a TLP label (every
//! published or withdrawn advisory's newest document that the reader may read, with
//! what the index files and the ROLIE feed list of it), one document with its OpenPGP
//! signature, and the OpenPGP public keys, the active one first. TLP:WHITE is for
//! anyone; TLP:AMBER and TLP:RED documents only for the vendor and the customers
//! they name.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::SubsecRound;

use crate::db::models::advisory::distribution as distributed;
use crate::db::models::{AdvisoryRecord, RevisionRecord, SigningKeyRecord};
use crate::domain::csaf::provider::{self, Listed, Provider, PublishedKey};
use crate::domain::csaf::{document_path, file_name};
use crate::domain::openpgp::fingerprint_of_armored;
use crate::domain::{AdvisoryStatus, Reader, Tlp};
use crate::services::{ServiceError, Services};

/// What the distribution lists: its documents and the keys that signed them.
pub struct Distribution {
    pub documents: Vec<Listed>,
    pub keys: Vec<PublishedKey>,
}

/// The documents of the distribution of `tlp` that `reader` may read, and the
/// OpenPGP keys.
pub async fn distribution(services: &Services, tlp: Tlp, reader: Reader) -> Result<Distribution, ServiceError> {
    services
        .db
        .run(move |conn| {
            let (advisories, product_names) = distributed(conn, tlp, &reader)?;
            let mut products: HashMap<_, Vec<String>> = HashMap::new();
            for (advisory, name) in product_names {
                products.entry(advisory).or_default().push(name);
            }
            let documents = advisories
                .into_iter()
                .filter_map(|a| {
                    Some(Listed {
                        tracking_id: a.public_id?,
                        title: a.title,
                        // To the second, as the documents state them.
                        initial: a.first_published_at?.and_utc().trunc_subsecs(0),
                        current: a.last_published_at?.and_utc().trunc_subsecs(0),
                        products: products.remove(&a.id).unwrap_or_default(),
                        tlp,
                    })
                })
                .collect();
            let keys = published_keys(SigningKeyRecord::list(conn)?)?;
            Ok(Distribution { documents, keys })
        })
        .await
}

/// A generated file of a distribution: the provider metadata, service and category
/// documents (public only), the index files and the ROLIE feed (of each TLP label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsafFile {
    Metadata,
    Service,
    Category,
    Index,
    Changes,
    Feed,
}

/// The public files, rendered once per catalogue generation (every publication,
/// revision and withdrawal moves it): polling them costs no database query.
#[derive(Default)]
pub struct PublicFiles {
    rendered: Mutex<Option<(i64, HashMap<CsafFile, Bytes>)>>,
}

/// The provider of this server, with `keys`.
fn provider<'a>(services: &'a Services, base: &'a str, keys: &'a [PublishedKey]) -> Provider<'a> {
    Provider {
        base,
        publisher: &services.publish.publisher,
        keys,
    }
}

/// `file` of the distribution `found` of `tlp`.
fn render(services: &Services, found: &Distribution, tlp: Tlp, file: CsafFile) -> Bytes {
    let base = services.config.url("");
    let provider = provider(services, &base, &found.keys);
    let now = chrono::Utc::now();
    let body = match file {
        CsafFile::Metadata => provider::metadata(&provider, &found.documents, now).to_string(),
        CsafFile::Service => provider::service_document(&provider).to_string(),
        CsafFile::Category => provider::category_document(&provider, &found.documents).to_string(),
        CsafFile::Index => provider::index_txt(&found.documents),
        CsafFile::Changes => provider::changes_csv(&found.documents),
        CsafFile::Feed => provider::rolie_feed(&provider, tlp, &found.documents, now).to_string(),
    };
    Bytes::from(body)
}

/// The public (TLP:WHITE) `file`, as of the catalogue this instance has loaded.
pub async fn public_file(services: &Services, file: CsafFile) -> Result<Bytes, ServiceError> {
    let generation = services.fleet.generations().catalogue;
    let cache = &services.csaf_files;
    {
        let rendered = cache.rendered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bytes) = rendered
            .as_ref()
            .filter(|(at, _)| *at == generation)
            .and_then(|(_, files)| files.get(&file))
        {
            return Ok(bytes.clone());
        }
    }
    let found = distribution(services, Tlp::White, Reader::Anyone).await?;
    let bytes = render(services, &found, Tlp::White, file);
    let mut rendered = cache.rendered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match rendered.as_mut() {
        Some((at, files)) if *at == generation => {
            files.insert(file, bytes.clone());
        }
        _ => *rendered = Some((generation, HashMap::from([(file, bytes.clone())]))),
    }
    Ok(bytes)
}

/// `file` of the restricted distribution of `tlp`, as `reader` may read it: made
/// for each request, since each reader sees its own.
pub async fn restricted_file(
    services: &Services,
    tlp: Tlp,
    reader: Reader,
    file: CsafFile,
) -> Result<Bytes, ServiceError> {
    let found = distribution(services, tlp, reader).await?;
    Ok(render(services, &found, tlp, file))
}

/// `security.txt`, valid `valid_for` from now.
pub fn security_txt(services: &Services, valid_for: chrono::TimeDelta) -> String {
    let base = services.config.url("");
    provider::security_txt(
        &provider(services, &base, &[]),
        &services.config.security_contact(),
        chrono::Utc::now() + valid_for,
    )
}

/// The OpenPGP keys: the active one first, then the retired ones, newest first.
fn published_keys(mut records: Vec<SigningKeyRecord>) -> Result<Vec<PublishedKey>, ServiceError> {
    records.sort_by(|a, b| {
        (a.retired_at.is_some(), std::cmp::Reverse(a.created_at))
            .cmp(&(b.retired_at.is_some(), std::cmp::Reverse(b.created_at)))
    });
    records
        .into_iter()
        .filter_map(|k| k.openpgp_key.map(|armored| (k.key_id, armored)))
        .map(|(key_id, armored)| {
            let fingerprint = fingerprint_of_armored(&armored)
                .map_err(|e| ServiceError::internal(format!("the OpenPGP key of {key_id}"), e))?;
            Ok(PublishedKey { fingerprint, armored })
        })
        .collect()
}

/// One armored OpenPGP public key by its fingerprint.
pub async fn key(services: &Services, fingerprint: String) -> Result<PublishedKey, ServiceError> {
    let keys = services
        .db
        .run(|conn| published_keys(SigningKeyRecord::list(conn)?))
        .await?;
    keys.into_iter()
        .find(|k| k.fingerprint.eq_ignore_ascii_case(&fingerprint))
        .ok_or(ServiceError::NotFound("key"))
}

/// The newest document at `<year>/<name>` of the distribution of `tlp` (`name`
/// ends in `.json`), with its revision, when `reader` may read it: the only spelling
/// of a path that answers is the one the CSAF file name rule gives.
pub async fn document(
    services: &Services,
    tlp: Tlp,
    reader: Reader,
    year: String,
    name: String,
) -> Result<(AdvisoryRecord, RevisionRecord), ServiceError> {
    let stem = name.strip_suffix(".json").ok_or(ServiceError::NotFound("document"))?;
    if stem.is_empty()
        || !stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ServiceError::NotFound("document"));
    }
    let key = stem.to_uppercase();
    services
        .db
        .run(move |conn| {
            let record = AdvisoryRecord::find(conn, &key)?.ok_or(ServiceError::NotFound("document"))?;
            let public_id = record.public_id.clone().unwrap_or_default();
            let first = record.first_published_at.map(|t| t.and_utc());
            let at_path = first.is_some_and(|t| {
                use chrono::Datelike;
                document_path(&public_id, t.year()) == format!("{year}/{name}") && file_name(&public_id) == name
            });
            if record.status == AdvisoryStatus::Draft
                || !at_path
                || record.tlp != tlp
                || !record.readable(conn, &reader)?
            {
                return Err(ServiceError::NotFound("document"));
            }
            let revision = RevisionRecord::find(conn, &record.id, record.latest_revision)?
                .ok_or(ServiceError::NotFound("document"))?;
            Ok((record, revision))
        })
        .await
}
