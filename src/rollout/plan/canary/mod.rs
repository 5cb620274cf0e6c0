//! The canary gate: before the full fleet of a new revision is brought up, a
//! canary of it is judged against a fresh baseline of the stable revision.
//! `gate` decides (recording every decision in `status.canary`, so a restart
//! or a deleted CanaryAnalysis never reverses one); `fleets` acts on the
//! decision (the canary's fleets and its analysis). Traffic is `traffic.rs`'s
//! business; names and templates are `names.rs`'s; readiness is `world.rs`'s.

pub(super) mod fleets;
pub(super) mod gate;
