//! Wire types: the request and response bodies of the API that more than one side
//! uses (handlers and pages, the server and its clients). Each is defined once.

pub mod advisories;
pub mod patches;
