//! Who is calling (authentication by bearer token) and what they may do (RBAC
//! authorization), as a real API server decides it. `attributes` and `rbac`
//! are pure functions (request → attributes, attributes + RBAC objects →
//! decision), table-tested; `tokens` maps tokens to identities; the HTTP
//! layer that uses them is `server::authz`. docs/sandbox.md says what is and
//! is not enforced.

pub mod attributes;
pub mod forbidden;
pub mod rbac;
pub mod tokens;

pub use attributes::Attributes;
pub use rbac::{Decision, Policy};
pub use tokens::{Identity, Tokens};

/// Who a request without credentials is.
///
/// kubectl (client-go) never sends a bearer token over plain http
/// (kubernetes/kubectl#744), and the sandbox serves plain http; so by default
/// a request without credentials is the administrator, as on the API
/// server's old insecure port (no authentication, no authorization). A
/// client that sends a token (kube-rs does, over http too) is held to RBAC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anonymous {
    /// The administrator (`sandbox-admin`, `system:masters`).
    #[default]
    Admin,
    /// `system:anonymous` in `system:unauthenticated`, as a real server with
    /// anonymous authentication on: RBAC lets it read `/version` and the
    /// health endpoints, nothing else (403).
    Unauthenticated,
}

/// The group whose members may do anything, as on a real cluster.
pub const MASTERS_GROUP: &str = "system:masters";
/// Every authenticated identity is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// A request without credentials is this user, in this group.
pub const ANONYMOUS_USER: &str = "system:anonymous";
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The user name of the sandbox's administrator (in `system:masters`).
pub const ADMIN_USER: &str = "sandbox-admin";
