//! See DESIGN.md §2.
pub mod canary_analysis;
