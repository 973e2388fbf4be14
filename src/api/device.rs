//! The device protocol's messages, as the rest of the code names them; they are
//! defined once, in [`crate::domain::device`], for the server and the agent alike.

pub use crate::domain::device::*;
