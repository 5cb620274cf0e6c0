//! The controllers' client under election: kube's usual stack with the
//! write gate inserted *below* its retry of 429/503/504 answers (that retry
//! waits up to minutes between attempts; above the gate, a write retried
//! after the gate closed would still go out).

use std::sync::Arc;

use kube::client::ClientBuilder;
use kube::client::retry::RetryPolicy;
use kube::{Client, Config};
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use super::gate::{GateLayer, WriteGate};

/// Requests that may wait for the stack at once (as kube's own buffer).
const BUFFER: usize = 1024;

/// A client for `config` whose every write passes `gate`, retried (when
/// `config.default_retry`) above the gate.
pub fn gated(mut config: Config, gate: Arc<WriteGate>) -> Result<Client, kube::Error> {
    let retry = std::mem::replace(&mut config.default_retry, false);
    let builder = ClientBuilder::try_from(config)?.with_layer(&GateLayer(gate));
    if !retry {
        return Ok(builder.build());
    }
    // The retry layer clones its service: a buffer makes the boxed stack
    // cloneable, as kube's `Client` does.
    Ok(builder
        .with_layer(&BufferLayer::new(BUFFER))
        .with_layer(&RetryLayer::new(RetryPolicy::server_retry()))
        .build())
}

/// A plain client for `config` (the election's own: its renew must pass
/// while the gate is open, and it carries no gate).
pub fn plain(config: Config) -> Result<Client, kube::Error> {
    Client::try_from(config)
}
