//! Who asks, in domain terms: the services decide what a caller may see and do from
//! this, whatever the caller came in through (a token, a session, the shell).

use crate::domain::Role;
use crate::ids::{CustomerId, UserId};

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
