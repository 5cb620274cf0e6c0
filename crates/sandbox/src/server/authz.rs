//! The thin HTTP layer of authentication and authorization: every request's
//! bearer token becomes an identity (`auth::tokens`), its method and path
//! become attributes (`auth::attributes`), and the RBAC objects in the store
//! decide (`auth::rbac`). 401 for a token the sandbox never issued (or whose
//! ServiceAccount is gone), 403 for a request RBAC does not allow; a request
//! without credentials is who [`Anonymous`] says.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::Shared;
use crate::auth::forbidden::{forbidden, unauthorized};
use crate::auth::rbac::{self, Decision, Policy, RBAC_GROUP};
use crate::auth::tokens::Holder;
use crate::auth::{Anonymous, Identity, attributes};
use crate::registry::GroupResource;
use crate::store::Store;

pub async fn authorize(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let who = match identity(&st, &req) {
        Some(who) => who,
        None => return unauthorized().into_response(),
    };
    let query = super::route::parse_query(req.uri().query());
    let attrs = attributes::of_request(req.method().as_str(), req.uri().path(), &query);
    // Administrators skip reading the RBAC objects.
    let decision = if who.in_group(crate::auth::MASTERS_GROUP) {
        Decision::Allow
    } else {
        rbac::authorize(&who, &attrs, &policy(&st.store))
    };
    match decision {
        Decision::Allow => next.run(req).await,
        Decision::Deny { reason } => {
            tracing::debug!(user = %who.user, ?attrs, "forbidden");
            forbidden(&who.user, &attrs, &reason).into_response()
        }
    }
}

/// None: credentials the sandbox does not accept.
fn identity(st: &Shared, req: &Request) -> Option<Identity> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Some(match st.anonymous {
            Anonymous::Admin => Identity::admin(),
            Anonymous::Unauthenticated => Identity::anonymous(),
        });
    };
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    match st.tokens.holder(token)? {
        Holder::Admin => Some(Identity::admin()),
        Holder::ServiceAccount { namespace, name } => {
            let sa = GroupResource::new("", "serviceaccounts");
            st.store
                .get(&sa, &namespace, &name)
                .map(|_| Identity::service_account(&namespace, &name))
        }
    }
}

/// Every RBAC object in the store.
pub fn policy(store: &Store) -> Policy {
    let all = |resource: &str| {
        store
            .list(&GroupResource::new(RBAC_GROUP, resource), None)
            .0
    };
    Policy {
        roles: all("roles").iter().map(|o| rbac::role_of(o)).collect(),
        cluster_roles: all("clusterroles")
            .iter()
            .map(|o| rbac::role_of(o))
            .collect(),
        role_bindings: all("rolebindings")
            .iter()
            .map(|o| rbac::binding_of(o))
            .collect(),
        cluster_role_bindings: all("clusterrolebindings")
            .iter()
            .map(|o| rbac::binding_of(o))
            .collect(),
    }
}
