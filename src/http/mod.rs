//! HTTP plumbing that handlers share and that is no handler itself: extractor
//! limits and body reading, byte ranges and validators for downloads, the pieces
//! every HTML page uses, the advisory form, the SVG charts, and the session cookie.

pub mod advisory_form;
pub mod chart;
pub mod cookies;
pub mod extract;
pub mod pages;
pub mod ranges;
pub mod views;
