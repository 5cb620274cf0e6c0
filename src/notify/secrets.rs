//! Shell: reads one key of a Secret for [`super::channel::resolve`]. Values
//! never reach logs or messages.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::channel::SecretValue;
use crate::api::endpoint::SecretKeyRef;

pub async fn read(api: &Api<Secret>, r: &SecretKeyRef) -> SecretValue {
    match api.get_opt(&r.name).await {
        Ok(None) => SecretValue::NoSecret,
        Err(e) => SecretValue::Unreadable(super::controller::api_text(&e)),
        Ok(Some(secret)) => {
            let data = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|b| b.0.clone());
            let string = || {
                secret
                    .string_data
                    .as_ref()?
                    .get(&r.key)
                    .map(|s| s.clone().into_bytes())
            };
            match data.or_else(string) {
                Some(v) => SecretValue::Found(v),
                None => SecretValue::NoKey,
            }
        }
    }
}
