//! Reconcile metrics, recorded the same way for every controller: a
//! [`ReconcileGuard`] counts the reconcile when it starts, records its
//! duration when dropped (also when the reconcile is cut short at shutdown)
//! and its outcome (the error kind) when told.

use std::time::Instant;

use crate::web::metrics::{ControllerLabels, ErrorLabels, OperatorMetrics};

/// A reconcile error with a short, stable label for `reconcile_errors`.
pub trait ErrorKind {
    fn kind(&self) -> &'static str;
}

/// Times one reconcile of controller `controller`.
pub struct ReconcileGuard<'a> {
    metrics: Option<&'a OperatorMetrics>,
    controller: &'static str,
    started: Instant,
}

impl<'a> ReconcileGuard<'a> {
    /// Counts a reconcile; `None` records nothing (a controller run without metrics).
    pub fn start(metrics: Option<&'a OperatorMetrics>, controller: &'static str) -> Self {
        if let Some(m) = metrics {
            m.reconciles.get_or_create(&labels(controller)).inc();
        }
        ReconcileGuard {
            metrics,
            controller,
            started: Instant::now(),
        }
    }

    /// Records the outcome: an error counts under its kind.
    pub fn outcome<T, E: ErrorKind>(&self, result: &Result<T, E>) {
        if let (Some(m), Err(e)) = (self.metrics, result) {
            m.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller: self.controller.to_owned(),
                    error: e.kind().to_owned(),
                })
                .inc();
        }
    }
}

impl Drop for ReconcileGuard<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.metrics {
            m.reconcile_duration
                .get_or_create(&labels(self.controller))
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Counts `n` API writes of `controller`.
pub fn count_writes(metrics: Option<&OperatorMetrics>, controller: &'static str, n: u64) {
    if let Some(m) = metrics {
        m.api_writes.get_or_create(&labels(controller)).inc_by(n);
    }
}

fn labels(controller: &'static str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Boom;
    impl ErrorKind for Boom {
        fn kind(&self) -> &'static str {
            "boom"
        }
    }

    #[test]
    fn a_guard_records_count_duration_and_error_kind() {
        let metrics = OperatorMetrics::new();
        {
            let guard = ReconcileGuard::start(Some(&metrics), "test");
            guard.outcome::<(), _>(&Err(Boom));
        }
        {
            let guard = ReconcileGuard::start(Some(&metrics), "test");
            guard.outcome::<(), Boom>(&Ok(()));
        }
        let text = metrics.encode().unwrap_or_default();
        assert!(
            text.contains(r#"redblack_reconciles_total{controller="test"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"redblack_reconcile_errors_total{controller="test",error="boom"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"redblack_reconcile_duration_seconds_count{controller="test"} 2"#),
            "{text}"
        );
    }
}
