//! Machine-readable feeds for anyone: the Atom feed and the CSAF provider tree.

pub mod atom;
pub mod csaf;
