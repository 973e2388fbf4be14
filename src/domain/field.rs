//! The refusal every parser of typed input gives: which field is at fault and why.
//! It sits below the rules that make it (text, advisories), so that they can share
//! it without depending on one another.

/// A refusal that names the field at fault (`affected[0].ranges[1].fixed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
