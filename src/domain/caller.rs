//! Who asks, in domain terms: the services decide what a caller may see and do from
//! this, whatever the caller came in through (a token, a session, the shell).

use crate::domain::Role;
use crate::ids::{CustomerId, UserId};

/// Who reads advisories: anyone (without an account, or a device), one customer's
/// admins, or the vendor's staff. A TLP:WHITE advisory is for anyone; a TLP:AMBER or
/// TLP:RED one only for the vendor and the customers it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reader {
    Anyone,
    Customer(CustomerId),
    Vendor,
}

impl Reader {
    /// The reader a user of `scope` is.
    pub fn in_scope(scope: &Scope) -> Reader {
        match scope {
            Scope::Vendor => Reader::Vendor,
            Scope::Customer(id) => Reader::Customer(id.clone()),
        }
    }

    /// Whether an advisory of `tlp` for the customers `readers` is for this reader.
    pub fn may_read(&self, tlp: crate::domain::Tlp, readers: &[CustomerId]) -> bool {
        match self {
            _ if !tlp.restricted() => true,
            Reader::Vendor => true,
            Reader::Customer(id) => readers.contains(id),
            Reader::Anyone => false,
        }
    }
}

/// Whose objects a user may see: all of them, or one customer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Vendor,
    Customer(CustomerId),
}

impl Scope {
    /// The customer a scoped caller is limited to; `None` for vendor staff.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            Scope::Vendor => None,
            Scope::Customer(id) => Some(id),
        }
    }

    /// Whether an object that belongs to `owner` (or to the vendor, when `None`) is
    /// visible in this scope.
    pub fn can_see(&self, owner: Option<&CustomerId>) -> bool {
        match self {
            Scope::Vendor => true,
            Scope::Customer(id) => owner == Some(id),
        }
    }

    /// The scope of an account with `role` that belongs to `customer`; `None` for a
    /// customer role without a customer, which the database does not allow.
    pub fn of(role: Role, customer: Option<&CustomerId>) -> Option<Scope> {
        match (role.is_vendor(), customer) {
            (true, _) => Some(Scope::Vendor),
            (false, Some(customer)) => Some(Scope::Customer(customer.clone())),
            (false, None) => None,
        }
    }
}

/// A signed-in user, as the services see it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: UserId,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    /// How the transparency log names this caller as the one who acted.
    pub fn actor(&self) -> crate::domain::event::Actor {
        crate::domain::event::Actor::User(self.user.clone())
    }
}
