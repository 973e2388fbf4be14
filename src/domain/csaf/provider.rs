//! What a CSAF 2.0 trusted provider (§7.1, role `csaf_trusted_provider`) serves
//! around its documents: `provider-metadata.json` (req. 7), the directory's
//! `index.txt` and `changes.csv` (req. 12, 13) and folder listings (req. 14), a ROLIE
//! feed with its service and category documents (req. 15–17), and the CSAF line of
//! `security.txt` (req. 8, RFC 9116). Every function here is pure: the caller brings
//! the documents' facts, the provider's base URL and its OpenPGP keys.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

use super::{directory, document_path, file_name, Publisher, DIRECTORY};
use crate::domain::advisory::rfc3339;
use crate::domain::Tlp;

/// The ROLIE information type every CSAF feed carries.
const INFORMATION_TYPE: &str = "urn:ietf:params:rolie:category:information-type";
/// The schema the documents are valid against.
const CSAF_SCHEMA: &str = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json";

/// Where the provider's files live below its public URL.
pub const METADATA: &str = ".well-known/csaf/provider-metadata.json";
pub const SERVICE: &str = ".well-known/csaf/service.json";
pub const CATEGORY: &str = ".well-known/csaf/category-white.json";
pub const KEYS: &str = ".well-known/csaf/openpgp";
pub const SECURITY_TXT: &str = ".well-known/security.txt";

/// The ROLIE feed of the documents of `tlp`.
pub fn feed(tlp: Tlp) -> String {
    format!(".well-known/csaf/feed-tlp-{}.json", tlp.folder())
}

/// One document of the TLP:WHITE distribution, as its newest revision says.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub tracking_id: String,
    pub title: String,
    /// `/document/tracking/initial_release_date`: it chooses the year folder.
    pub initial: DateTime<Utc>,
    /// `/document/tracking/current_release_date`.
    pub current: DateTime<Utc>,
    /// The names of the products it concerns (the feed's categories).
    pub products: Vec<String>,
    /// Who may read it: which distribution holds it.
    pub tlp: Tlp,
}

impl Listed {
    /// Its path below the directory: `<year>/<file name>`.
    pub fn path(&self) -> String {
        document_path(&self.tracking_id, self.initial.year())
    }

    pub fn file_name(&self) -> String {
        file_name(&self.tracking_id)
    }
}

/// An OpenPGP public key the provider publishes, by fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedKey {
    pub fingerprint: String,
    pub armored: String,
}

/// The provider: its public URL (without a trailing slash), publisher and keys.
pub struct Provider<'a> {
    pub base: &'a str,
    pub publisher: &'a Publisher,
    /// Newest first: the key that signs now leads, retired ones follow so that what
    /// they signed stays verifiable.
    pub keys: &'a [PublishedKey],
}

impl Provider<'_> {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    pub fn directory_url(&self) -> String {
        self.url(&format!("{DIRECTORY}/"))
    }

    pub fn document_url(&self, listed: &Listed) -> String {
        self.url(&format!("{}/{}", directory(listed.tlp), listed.path()))
    }

    pub fn key_url(&self, fingerprint: &str) -> String {
        self.url(&format!("{KEYS}/{fingerprint}.asc"))
    }
}

/// `index.txt`: every document's path, one a line, in path order.
pub fn index_txt(documents: &[Listed]) -> String {
    let mut paths: Vec<String> = documents.iter().map(Listed::path).collect();
    paths.sort();
    paths.into_iter().map(|p| p + "\n").collect()
}

/// `changes.csv`: every document's path and current release date, newest first, no
/// header (CSV with both fields quoted).
pub fn changes_csv(documents: &[Listed]) -> String {
    let mut rows: Vec<&Listed> = documents.iter().collect();
    rows.sort_by(|a, b| b.current.cmp(&a.current).then_with(|| a.path().cmp(&b.path())));
    rows.into_iter()
        .map(|d| format!("\"{}\",\"{}\"\n", d.path(), rfc3339(d.current)))
        .collect()
}

/// When the distribution last changed: its newest document, or `now` when empty.
pub fn last_updated(documents: &[Listed], now: DateTime<Utc>) -> DateTime<Utc> {
    documents.iter().map(|d| d.current).max().unwrap_or(now)
}

/// `provider-metadata.json` of a trusted provider.
pub fn metadata(provider: &Provider<'_>, documents: &[Listed], now: DateTime<Utc>) -> Value {
    let keys: Vec<Value> = provider
        .keys
        .iter()
        .map(|k| json!({"fingerprint": k.fingerprint, "url": provider.key_url(&k.fingerprint)}))
        .collect();
    json!({
        "canonical_url": provider.url(METADATA),
        "distributions": [{
            "directory_url": provider.directory_url(),
            "rolie": {
                "categories": [provider.url(CATEGORY)],
                "feeds": [
                    {
                        "summary": format!("Security advisories of {} for everyone (TLP:WHITE)", provider.publisher.name),
                        "tlp_label": "WHITE",
                        "url": provider.url(&feed(Tlp::White)),
                    },
                    {
                        "summary": format!("Advisories of {} for named customers (TLP:AMBER); sign in with an API token", provider.publisher.name),
                        "tlp_label": "AMBER",
                        "url": provider.url(&feed(Tlp::Amber)),
                    },
                    {
                        "summary": format!("Advisories of {} for named recipients (TLP:RED); sign in with an API token", provider.publisher.name),
                        "tlp_label": "RED",
                        "url": provider.url(&feed(Tlp::Red)),
                    },
                ],
                "services": [provider.url(SERVICE)],
            },
        }],
        "last_updated": rfc3339(last_updated(documents, now)),
        "list_on_CSAF_aggregators": true,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": true,
        "public_openpgp_keys": keys,
        "publisher": {"category": "vendor", "name": provider.publisher.name, "namespace": provider.publisher.namespace},
        "role": "csaf_trusted_provider",
    })
}

/// The ROLIE feed of the documents of `tlp` (those its reader may read), newest first.
pub fn rolie_feed(provider: &Provider<'_>, tlp: Tlp, documents: &[Listed], now: DateTime<Utc>) -> Value {
    let mut rows: Vec<&Listed> = documents.iter().collect();
    rows.sort_by(|a, b| b.current.cmp(&a.current).then_with(|| a.path().cmp(&b.path())));
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            let url = provider.document_url(d);
            let mut categories = vec![json!({"scheme": INFORMATION_TYPE, "term": "csaf"})];
            categories.extend(
                d.products
                    .iter()
                    .map(|p| json!({"scheme": provider.url(CATEGORY), "term": p})),
            );
            json!({
                "id": d.tracking_id,
                "title": d.title,
                "link": [
                    {"rel": "self", "href": url},
                    {"rel": "hash", "href": format!("{url}.sha256")},
                    {"rel": "hash", "href": format!("{url}.sha512")},
                    {"rel": "signature", "href": format!("{url}.asc")},
                ],
                "published": rfc3339(d.initial),
                "updated": rfc3339(d.current),
                "category": categories,
                "content": {"type": "application/json", "src": url},
                "format": {"schema": CSAF_SCHEMA, "version": "2.0"},
            })
        })
        .collect();
    json!({
        "feed": {
            "id": format!("csaf-feed-tlp-{}", tlp.folder()),
            "title": format!("{} CSAF feed (TLP:{tlp})", provider.publisher.name),
            "link": [{"rel": "self", "href": provider.url(&feed(tlp))}],
            "category": [{"scheme": INFORMATION_TYPE, "term": "csaf"}],
            "updated": rfc3339(last_updated(documents, now)),
            "entry": entries,
        }
    })
}

/// The ROLIE service document: the one workspace and a collection per feed.
pub fn service_document(provider: &Provider<'_>) -> Value {
    let collections: Vec<Value> = Tlp::ALL
        .iter()
        .map(|tlp| {
            json!({
                "title": format!("{} CSAF feed (TLP:{tlp})", provider.publisher.name),
                "href": provider.url(&feed(*tlp)),
                "categories": {"category": [{"scheme": INFORMATION_TYPE, "term": "csaf"}]},
            })
        })
        .collect();
    json!({
        "service": {
            "workspace": [{
                "title": format!("{} security advisories", provider.publisher.name),
                "collection": collections,
            }],
        }
    })
}

/// The ROLIE category document: the information type and every product a document
/// of the feed concerns (the terms its entries carry).
pub fn category_document(provider: &Provider<'_>, documents: &[Listed]) -> Value {
    let mut products: Vec<&str> = documents
        .iter()
        .flat_map(|d| d.products.iter().map(String::as_str))
        .collect();
    products.sort_unstable();
    products.dedup();
    let mut categories = vec![json!({"scheme": INFORMATION_TYPE, "term": "csaf"})];
    categories.extend(
        products
            .into_iter()
            .map(|p| json!({"scheme": provider.url(CATEGORY), "term": p})),
    );
    json!({"categories": {"category": categories}})
}

/// The year folders of the directory, in order.
pub fn years(documents: &[Listed]) -> Vec<i32> {
    let mut years: Vec<i32> = documents.iter().map(|d| d.initial.year()).collect();
    years.sort_unstable();
    years.dedup();
    years
}

/// The files of one year folder: each document with its hash and signature files.
pub fn files_in(documents: &[Listed], year: i32) -> Vec<String> {
    let mut names: Vec<String> = documents
        .iter()
        .filter(|d| d.initial.year() == year)
        .flat_map(|d| {
            let name = d.file_name();
            ["", ".asc", ".sha256", ".sha512"].map(|suffix| format!("{name}{suffix}"))
        })
        .collect();
    names.sort();
    names
}

/// `security.txt` (RFC 9116): where to report, until when it holds, and the CSAF
/// provider metadata (CSAF 2.0 §7.1.8).
pub fn security_txt(provider: &Provider<'_>, contact: &str, expires: DateTime<Utc>) -> String {
    format!(
        "Contact: {contact}\nExpires: {}\nPreferred-Languages: en\nCanonical: {}\nCSAF: {}\n",
        rfc3339(expires),
        provider.url(SECURITY_TXT),
        provider.url(METADATA),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn listed(id: &str, initial: &str, current: &str) -> Listed {
        Listed {
            tracking_id: id.into(),
            title: format!("Advisory {id}"),
            initial: at(initial),
            current: at(current),
            products: vec!["ScreenOS".into()],
            tlp: Tlp::White,
        }
    }

    fn publisher() -> Publisher {
        Publisher {
            name: "Example".into(),
            namespace: "https://example.com".into(),
        }
    }

    #[test]
    fn index_is_by_path_and_changes_newest_first() {
        let docs = vec![
            listed("PW-2025-0009", "2025-03-01T00:00:00Z", "2026-02-01T00:00:00Z"),
            listed("PW-2026-0001", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            listed("PW-2026-0002", "2026-01-05T00:00:00Z", "2026-03-01T10:00:00Z"),
        ];
        assert_eq!(
            index_txt(&docs),
            "2025/pw-2025-0009.json\n2026/pw-2026-0001.json\n2026/pw-2026-0002.json\n"
        );
        assert_eq!(
            changes_csv(&docs),
            "\"2026/pw-2026-0002.json\",\"2026-03-01T10:00:00Z\"\n\
             \"2025/pw-2025-0009.json\",\"2026-02-01T00:00:00Z\"\n\
             \"2026/pw-2026-0001.json\",\"2026-01-02T00:00:00Z\"\n"
        );
        assert_eq!(index_txt(&[]), "");
        assert_eq!(years(&docs), vec![2025, 2026]);
        assert_eq!(
            files_in(&docs, 2025),
            vec![
                "pw-2025-0009.json",
                "pw-2025-0009.json.asc",
                "pw-2025-0009.json.sha256",
                "pw-2025-0009.json.sha512"
            ]
        );
    }

    #[test]
    fn metadata_names_a_trusted_provider_its_feeds_and_keys() {
        let publisher = publisher();
        let keys = vec![PublishedKey {
            fingerprint: "AB".repeat(20),
            armored: String::new(),
        }];
        let provider = Provider {
            base: "https://example.com",
            publisher: &publisher,
            keys: &keys,
        };
        let docs = vec![listed("PW-2026-0001", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")];
        let meta = metadata(&provider, &docs, at("2026-05-01T00:00:00Z"));
        assert_eq!(meta["role"], "csaf_trusted_provider");
        assert_eq!(meta["last_updated"], "2026-01-02T00:00:00Z");
        assert_eq!(
            meta["distributions"][0]["directory_url"],
            "https://example.com/.well-known/csaf/white/"
        );
        assert_eq!(meta["distributions"][0]["rolie"]["feeds"][0]["tlp_label"], "WHITE");
        assert_eq!(
            meta["public_openpgp_keys"][0]["url"],
            format!("https://example.com/.well-known/csaf/openpgp/{}.asc", "AB".repeat(20))
        );
        let feed = rolie_feed(&provider, Tlp::White, &docs, at("2026-05-01T00:00:00Z"));
        let entry = &feed["feed"]["entry"][0];
        assert_eq!(entry["link"][0]["rel"], "self");
        assert_eq!(
            entry["link"][3]["href"],
            "https://example.com/.well-known/csaf/white/2026/pw-2026-0001.json.asc"
        );
        assert_eq!(entry["format"]["version"], "2.0");
        let txt = security_txt(&provider, "mailto:security@example.com", at("2027-01-01T00:00:00Z"));
        assert!(txt.contains("CSAF: https://example.com/.well-known/csaf/provider-metadata.json\n"));
        assert!(txt.starts_with("Contact: mailto:security@example.com\nExpires: 2027-01-01T00:00:00Z\n"));
    }
}
