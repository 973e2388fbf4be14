//! Wire types of the transparency log: the signed tree head, entries, proofs, and
//! the log position that publish answers and poll offers carry. They are defined
//! with the log's rules in [`crate::domain::log`], where the server's services use
//! them too.

pub use crate::domain::log::{
    hex_proof, parse_proof, ConsistencyProof, EntriesPage, InclusionProof, LogEntry, LogHead, Logged, OfferLog,
    SignedHead,
};
