//! Leader election with fencing on a `coordination.k8s.io/v1` Lease: of the
//! operator's replicas only one runs the controllers, and a replica that can
//! no longer prove it leads stops writing *before* another may take over.
//!
//! Hand-written, not `kube-lease-manager` (which supports kube 5): that
//! crate tells its user "you lead" through a channel its own loop updates,
//! and judges expiry from the Lease's wall-clock `renewTime` against the
//! local wall clock. Neither fences: a process frozen by SIGSTOP (or a
//! stalled node) still believes its channel when it resumes and writes
//! before its loop has run — the failure of Argo Rollouts issue #2117, an
//! old leader reconciling beside the new one — and wall clocks of two nodes
//! disagree. What this module does instead, in ~400 lines:
//!
//! - decisions ([`decide`], pure, table-tested) read only the Lease as this
//!   process observed it, its identity and the *monotonic* clock: a
//!   candidate counts a lease duration from when it first saw the current
//!   resourceVersion (as client-go does), never from `renewTime`;
//! - every write of the controllers passes a gate ([`gate`]) that checks,
//!   at the moment the request is sent, that the last successful renew was
//!   sent less than the renew deadline ago. The renew deadline is shorter
//!   than the lease duration, so the gate closes before any candidate may
//!   acquire, even when the renew loop itself never got to run;
//! - losing the Lease ends the process's controllers (in-flight reconciles
//!   cancelled) and `redblack controller` exits with an error: Kubernetes
//!   restarts it as a fresh standby, with no cache or queue carried over
//!   (controller-runtime does the same);
//! - on a graceful shutdown the leader closes its gate, then hands the Lease
//!   back (holder cleared), so a standby takes over at its next look.
//!
//! [`elector`] is the thin I/O loop; [`config`] the flags, identity and
//! namespace; [`client`] builds the gated client.

pub mod client;
pub mod config;
pub mod decide;
pub mod elector;
pub mod gate;

pub use config::ElectionArgs;
pub use decide::Timing;
pub use elector::{Election, Elector, Role};
pub use gate::{Fenced, GateLayer, WriteGate};

use std::sync::Arc;

/// Whether `run_controller` runs its controllers at once or only while it
/// holds the Lease. The default runs them unconditionally (tests, demos and
/// `--leader-elect=false`).
#[derive(Clone, Default)]
pub enum Leadership {
    #[default]
    Unconditional,
    /// Run the controllers only while this election is won. Their client
    /// must carry the election's write gate ([`client::gated`]).
    Elected(Arc<Elector>),
}
