//! The demo app's Prometheus metrics (OpenMetrics text at `/metrics`).

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::process::ProcessCollector;

/// Bucket upper bounds in seconds: from 1 ms, so a fast service still spreads
/// over several buckets, to 10 s, past any demo tail latency worth judging.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    code: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type HistogramFamily = Family<VersionLabel, Histogram, fn() -> Histogram>;

/// Request counter, latency histogram and process metrics of one demo app.
#[derive(Debug)]
pub struct DemoMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    in_flight: Gauge,
}

/// One work request being served; counted in `http_requests_in_flight` until
/// dropped (also when the request is cancelled).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for DemoMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // `Counter` gets `_total` appended: `http_requests_total`.
        registry.register(
            "http_requests",
            // prometheus-client appends the final period to HELP texts.
            "HTTP requests served by the work endpoint, by status code and version",
            requests.clone(),
        );
        let duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time to serve a work request, including injected latency",
            Unit::Seconds,
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Work requests being served right now (what a graceful shutdown waits for)",
            in_flight.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            requests,
            duration,
            in_flight,
        }
    }

    /// Work requests being served right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Counts a work request as in flight until the guard is dropped.
    pub fn start_request(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records one served work request.
    pub fn observe(&self, version: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                code: code.to_string(),
                version: version.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&VersionLabel {
                version: version.to_owned(),
            })
            .observe(seconds);
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let m = DemoMetrics::new();
        m.observe("v7", 500, 0.002);
        let in_flight = m.start_request();
        assert!(m.encode().unwrap().contains("http_requests_in_flight 1"));
        drop(in_flight);
        let text = m.encode().unwrap();
        for needle in [
            "http_requests_total{code=\"500\",version=\"v7\"} 1",
            "http_request_duration_seconds_bucket{le=\"0.001\",version=\"v7\"} 0",
            "http_request_duration_seconds_bucket{le=\"0.0025\",version=\"v7\"} 1",
            "http_request_duration_seconds_count{version=\"v7\"} 1",
            "http_requests_in_flight 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(
            !text.contains(".."),
            "doubled period in a HELP text:\n{text}"
        );
        #[cfg(target_os = "linux")]
        for needle in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
