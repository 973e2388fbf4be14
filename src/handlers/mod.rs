//! HTTP handlers, one file per resource, grouped by who they serve: `api` (the JSON
//! API), `pages` (HTML), `feeds` (Atom and CSAF) and `ops` (health, metrics, static
//! assets). A handler parses the request, is authorised by its extractor types,
//! calls one service and renders; shared HTTP plumbing is in `crate::http`, and no
//! handler module uses another. The route table is `crate::routes`.

pub mod api;
pub mod device;
pub mod feeds;
pub mod ops;
pub mod pages;
