//! `redblack smoke`: smoke tests as a gate's Job runs them — N requests to a
//! URL, a summary, and a non-zero exit when more than `--max-errors` failed.
//! The decision ([`Summary`]) is pure; the requests are the thin shell.

use std::time::Duration;

use futures::StreamExt;

use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// URL to GET, e.g. http://web-preview.default:8080/ (a gate renders `${previewService}`).
    #[arg(long)]
    pub url: String,
    /// How many requests to send.
    #[arg(long, default_value_t = 20)]
    pub requests: usize,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Failed requests tolerated (a non-2xx answer or no answer).
    #[arg(long, default_value_t = 0)]
    pub max_errors: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = redblack_duration::parse)]
    pub timeout: Duration,
}

/// The outcome of one request: the status, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    NoAnswer(String),
}

/// What the requests add up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ok: usize,
    /// Failures by what was seen (`503`, `connection refused`), in first-seen order.
    pub failures: Vec<(String, usize)>,
}

impl Summary {
    pub fn from_outcomes(outcomes: &[Outcome]) -> Summary {
        let mut s = Summary::default();
        for o in outcomes {
            let failure = match o {
                Outcome::Status(code) if (200..300).contains(code) => {
                    s.ok += 1;
                    continue;
                }
                Outcome::Status(code) => format!("HTTP {code}"),
                Outcome::NoAnswer(why) => why.clone(),
            };
            match s.failures.iter_mut().find(|(k, _)| *k == failure) {
                Some((_, n)) => *n += 1,
                None => s.failures.push((failure, 1)),
            }
        }
        s
    }

    pub fn failed(&self) -> usize {
        self.failures.iter().map(|(_, n)| n).sum()
    }

    /// Passes when at most `max_errors` requests failed (and any were sent).
    pub fn passes(&self, max_errors: usize) -> bool {
        self.ok + self.failed() > 0 && self.failed() <= max_errors
    }

    pub fn render(&self, url: &str, max_errors: usize) -> String {
        let mut out = format!(
            "smoke {url}: {} requests, {} ok, {} failed (at most {max_errors} allowed): {}",
            self.ok + self.failed(),
            self.ok,
            self.failed(),
            if self.passes(max_errors) {
                "PASS"
            } else {
                "FAIL"
            }
        );
        for (what, n) in &self.failures {
            out.push_str(&format!("\n  {n} × {what}"));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("smoke tests failed: {failed} of {total} requests to {url} failed (at most {max} allowed)")]
pub struct SmokeFailed {
    pub url: String,
    pub failed: usize,
    pub total: usize,
    pub max: usize,
}

pub async fn run(args: SmokeArgs) -> CliResult {
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let outcomes: Vec<Outcome> = futures::stream::iter(0..args.requests)
        .map(|_| {
            let (client, url) = (&client, &args.url);
            async move {
                match client.get(url).send().await {
                    Ok(r) => Outcome::Status(r.status().as_u16()),
                    Err(e) => Outcome::NoAnswer(describe(&e)),
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let summary = Summary::from_outcomes(&outcomes);
    println!("{}", summary.render(&args.url, args.max_errors));
    if summary.passes(args.max_errors) {
        Ok(())
    } else {
        Err(Box::new(SmokeFailed {
            url: args.url,
            failed: summary.failed(),
            total: outcomes.len(),
            max: args.max_errors,
        }))
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "no answer".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind_and_judged_against_the_budget() {
        let s = Summary::from_outcomes(&[
            Outcome::Status(200),
            Outcome::Status(503),
            Outcome::NoAnswer("cannot connect".into()),
            Outcome::Status(503),
        ]);
        assert_eq!(s.ok, 1);
        assert_eq!(
            s.failures,
            vec![("HTTP 503".to_owned(), 2), ("cannot connect".to_owned(), 1)]
        );
        assert!(!s.passes(2));
        assert!(s.passes(3));
        assert!(!Summary::default().passes(10), "no request is no evidence");
        assert!(s.render("http://x", 0).contains("FAIL"));
    }
}
