//! User roles and what each may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The role of a user. Vendor roles act across all customers; a customer admin
/// belongs to exactly one customer and sees nothing of any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    VendorAdmin,
    VendorPublisher,
    CustomerAdmin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::VendorAdmin, Role::VendorPublisher, Role::CustomerAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::VendorAdmin => "vendor-admin",
            Role::VendorPublisher => "vendor-publisher",
            Role::CustomerAdmin => "customer-admin",
        }
    }

    /// Whether the role belongs to the vendor rather than to one customer.
    pub fn is_vendor(self) -> bool {
        !matches!(self, Role::CustomerAdmin)
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role (vendor-admin, vendor-publisher or customer-admin)"))
    }
}

/// A role read from the database: an unknown text is an error, not a default.
impl TryFrom<String> for Role {
    type Error = crate::domain::state::UnknownValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map_err(|_| crate::domain::state::UnknownValue {
            kind: "role",
            value: text,
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::VendorPublisher.is_vendor());
        assert!(!Role::CustomerAdmin.is_vendor());
    }
}
