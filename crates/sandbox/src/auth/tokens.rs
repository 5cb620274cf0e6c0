//! Bearer tokens and the identities they stand for.
//!
//! Tokens are opaque random strings the sandbox hands out and remembers; they
//! are NOT JWTs (a real cluster's ServiceAccount tokens are signed JWTs that
//! carry their identity; nothing outside the sandbox can verify these). One
//! admin token is made at start; a ServiceAccount's token is made on request
//! and authenticates only while the ServiceAccount object exists, as a real
//! server's token authenticator checks.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{
    ADMIN_USER, ANONYMOUS_USER, AUTHENTICATED_GROUP, MASTERS_GROUP, UNAUTHENTICATED_GROUP,
};

/// Who a request is from: a user name and its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn admin() -> Identity {
        Identity {
            user: ADMIN_USER.into(),
            groups: vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
        }
    }

    pub fn anonymous() -> Identity {
        Identity {
            user: ANONYMOUS_USER.into(),
            groups: vec![UNAUTHENTICATED_GROUP.into()],
        }
    }

    /// `system:serviceaccount:NS:NAME`, in the groups a real server gives it.
    pub fn service_account(namespace: &str, name: &str) -> Identity {
        Identity {
            user: service_account_user(namespace, name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED_GROUP.into(),
            ],
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// What a token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    Admin,
    ServiceAccount { namespace: String, name: String },
}

/// The tokens of one sandbox.
#[derive(Debug)]
pub struct Tokens {
    admin: String,
    issued: RwLock<HashMap<String, Holder>>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

fn random_token() -> String {
    // 122 random bits, twice: unguessable enough for a loopback simulator.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Tokens {
    pub fn new() -> Tokens {
        let admin = random_token();
        let issued = HashMap::from([(admin.clone(), Holder::Admin)]);
        Tokens {
            admin,
            issued: RwLock::new(issued),
        }
    }

    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The token of ServiceAccount `namespace/name` (the same one on every
    /// call, so kubeconfigs written twice agree).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let holder = Holder::ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut issued = self.issued.write().unwrap_or_else(|e| e.into_inner());
        if let Some((token, _)) = issued.iter().find(|(_, h)| **h == holder) {
            return token.clone();
        }
        let token = random_token();
        issued.insert(token.clone(), holder);
        token
    }

    /// Who holds `token`; None for a token this sandbox never issued.
    pub fn holder(&self, token: &str) -> Option<Holder> {
        self.issued
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_their_holders() {
        let t = Tokens::new();
        assert_eq!(t.holder(t.admin_token()), Some(Holder::Admin));
        let sa = t.service_account_token("ns", "op");
        assert_eq!(sa, t.service_account_token("ns", "op"), "stable");
        assert_ne!(sa, t.service_account_token("ns", "other"));
        assert_eq!(
            t.holder(&sa),
            Some(Holder::ServiceAccount {
                namespace: "ns".into(),
                name: "op".into()
            })
        );
        assert_eq!(t.holder("guess"), None);
        assert_eq!(
            Identity::service_account("ns", "op").user,
            "system:serviceaccount:ns:op"
        );
    }
}
