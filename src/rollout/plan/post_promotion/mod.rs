//! Post-promotion analysis: after the switch to a new revision, its fleet is
//! judged against the previous fleet's metrics from BEFORE the switch (the
//! control scope is time-shifted by the analysis' `lifetime`: experiment over
//! `[switch, switch + lifetime]`, control over `[switch − lifetime, switch]`).
//! The previous fleet stays warm until the verdict; Failed switches traffic
//! back to it in ONE write and abandons the new revision.

//!
//! `verdict` decides (the record a promotion starts, the verdict of its
//! analysis); `analysis` acts (creates the CanaryAnalysis).

pub(super) mod analysis;
pub(super) mod verdict;
