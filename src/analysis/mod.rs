//! CanaryAnalysis: the statistical judge (pure) and the metric sources around it.

pub mod judge;
