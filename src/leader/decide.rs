//! PURE: every decision of the election, as functions of the Lease as this
//! process observed it, its identity and the monotonic clock (`now` is an
//! argument; nothing here reads a clock or does I/O).
//!
//! Time in these functions is *local monotonic time* (`Instant`). The Lease's
//! own timestamps (`renewTime`, `acquireTime`) are wall-clock times written by
//! another process on another node; they are written for people and other
//! tools, never trusted for a decision (clock skew between nodes would turn
//! into two leaders). A candidate instead measures how long the record has
//! stayed *unchanged in its own observation*, as client-go does.

use std::time::{Duration, Instant};

/// The timing of the election; see [`super::config::ElectionTiming::validate`]
/// for the rules between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a candidate waits, after it last saw the Lease change,
    /// before it may take it over.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renew the leader may
    /// still write. Strictly below `lease_duration`: the difference is the
    /// margin for writes already on the wire when the gate closes.
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate looks.
    pub retry_period: Duration,
}

/// The Lease's spec fields that decisions read (all optional, as the API
/// allows: another tool may have written a Lease with fields missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    pub transitions: Option<i32>,
}

impl Record {
    /// The holder, with an empty string read as none (a released Lease).
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// A Lease as this candidate observed it: the record, its resourceVersion
/// (the optimistic-concurrency token every write carries) and when this
/// process first saw that version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub record: Record,
    pub resource_version: String,
    pub first_seen: Instant,
}

/// Folds a fresh read into the previous observation: the clock of a record
/// starts when its resourceVersion is first seen and keeps running while it
/// stays the same.
pub fn observe(
    previous: Option<&Observation>,
    record: Record,
    resource_version: String,
    now: Instant,
) -> Observation {
    let first_seen = match previous {
        Some(p) if p.resource_version == resource_version => p.first_seen,
        _ => now,
    };
    Observation {
        record,
        resource_version,
        first_seen,
    }
}

/// What a process that does not lead does with the Lease it observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// No Lease exists: create it, holding it.
    Create,
    /// Write the record with this process as holder, guarded by the observed
    /// resourceVersion (a 409 means another candidate was first).
    Acquire { transitions: i32 },
    /// Held by another whose lease has not run out in our observation: look
    /// again no earlier than `until`.
    Wait { until: Instant },
}

/// The lease another holder is granted: the longer of what its record says
/// and our own setting. Trusting only the record would let a Lease written
/// with a tiny duration (by a tool, or a misconfigured replica) make us take
/// over before its holder's gate closed; trusting only ours would do the
/// same when the holder runs with a longer one.
pub fn granted(record: &Record, timing: &Timing) -> Duration {
    let recorded = record
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.unsigned_abs().into()))
        .unwrap_or_default();
    recorded.max(timing.lease_duration)
}

/// May this candidate take the Lease now?
pub fn candidate(
    observed: Option<&Observation>,
    me: &str,
    timing: &Timing,
    now: Instant,
) -> Candidate {
    let Some(obs) = observed else {
        return Candidate::Create;
    };
    let transitions = next_transitions(&obs.record, me);
    match obs.record.holder() {
        // Released (or never held), or ours from before: no one else writes.
        None => Candidate::Acquire { transitions },
        Some(holder) if holder == me => Candidate::Acquire { transitions },
        Some(_) => {
            let until = obs.first_seen + granted(&obs.record, timing);
            if now < until {
                Candidate::Wait { until }
            } else {
                Candidate::Acquire { transitions }
            }
        }
    }
}

/// `leaseTransitions` after `me` takes the record: one more whenever the
/// holder changes (a released Lease included), as client-go counts.
pub fn next_transitions(record: &Record, me: &str) -> i32 {
    let previous = record.transitions.unwrap_or(0).max(0);
    if record.holder() == Some(me) {
        previous
    } else {
        previous.saturating_add(1)
    }
}

/// What the leader does at a tick of its renew loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leading {
    /// Renew; the attempt must have succeeded by `deadline` or it is lost.
    Renew { deadline: Instant },
    /// The last successful renew is `renew_deadline` old: stop writing, stop
    /// the controllers. No renew is even attempted, so a process resumed
    /// after a freeze writes nothing at all, the Lease included.
    Stop,
}

/// The leader's decision, from when its last successful renew was *sent*
/// (the API server stamped the record after that, and a candidate saw it
/// later still: measuring from the send errs on the safe side).
pub fn leading(last_renew_sent: Instant, timing: &Timing, now: Instant) -> Leading {
    if may_write(Some(last_renew_sent), timing.renew_deadline, now) {
        Leading::Renew {
            deadline: last_renew_sent + timing.renew_deadline,
        }
    } else {
        Leading::Stop
    }
}

/// The write gate's rule: a write may leave this process only while the
/// last successful renew was sent less than `renew_deadline` ago. Checked
/// right before every API write, so it holds even when the renew loop has
/// not run (a process frozen by SIGSTOP: the monotonic clock kept going).
pub fn may_write(last_renew_sent: Option<Instant>, renew_deadline: Duration, now: Instant) -> bool {
    last_renew_sent.is_some_and(|t| now < t + renew_deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timing() -> Timing {
        Timing {
            lease_duration: 15 * S,
            renew_deadline: 10 * S,
            retry_period: 2 * S,
        }
    }

    fn held(holder: Option<&str>, secs: Option<i32>, transitions: Option<i32>) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            lease_duration_seconds: secs,
            transitions,
        }
    }

    fn seen(record: Record, at: Instant) -> Observation {
        Observation {
            record,
            resource_version: "7".into(),
            first_seen: at,
        }
    }

    #[test]
    fn candidate_decisions() {
        let t0 = Instant::now();
        let other = || held(Some("b-1"), Some(15), Some(3));
        // (what, observed, now after t0, expected)
        let cases: Vec<(&str, Option<Observation>, Duration, Candidate)> = vec![
            ("no lease", None, Duration::ZERO, Candidate::Create),
            (
                "held by another, fresh",
                Some(seen(other(), t0)),
                S,
                Candidate::Wait { until: t0 + 15 * S },
            ),
            (
                "held by another, one tick before it runs out",
                Some(seen(other(), t0)),
                15 * S - Duration::from_nanos(1),
                Candidate::Wait { until: t0 + 15 * S },
            ),
            (
                "held by another, exactly at expiry",
                Some(seen(other(), t0)),
                15 * S,
                Candidate::Acquire { transitions: 4 },
            ),
            (
                "held by another that expired long ago",
                Some(seen(other(), t0)),
                3600 * S,
                Candidate::Acquire { transitions: 4 },
            ),
            (
                "the holder asks for longer than we would grant",
                Some(seen(held(Some("b-1"), Some(60), Some(3)), t0)),
                30 * S,
                Candidate::Wait { until: t0 + 60 * S },
            ),
            (
                "a record asking for less than our setting gets ours",
                Some(seen(held(Some("b-1"), Some(1), Some(3)), t0)),
                5 * S,
                Candidate::Wait { until: t0 + 15 * S },
            ),
            (
                "no duration in the record: ours",
                Some(seen(held(Some("b-1"), None, None), t0)),
                14 * S,
                Candidate::Wait { until: t0 + 15 * S },
            ),
            (
                "a negative duration is ignored",
                Some(seen(held(Some("b-1"), Some(-5), Some(2)), t0)),
                15 * S,
                Candidate::Acquire { transitions: 3 },
            ),
            (
                "released (holder cleared): at once",
                Some(seen(held(None, Some(1), Some(3)), t0)),
                Duration::ZERO,
                Candidate::Acquire { transitions: 4 },
            ),
            (
                "an empty holder string is released too",
                Some(seen(held(Some(""), None, Some(3)), t0)),
                Duration::ZERO,
                Candidate::Acquire { transitions: 4 },
            ),
            (
                "a Lease with no spec at all",
                Some(seen(Record::default(), t0)),
                Duration::ZERO,
                Candidate::Acquire { transitions: 1 },
            ),
            (
                "ours already (same identity): no transition",
                Some(seen(held(Some("a-1"), Some(15), Some(3)), t0)),
                Duration::ZERO,
                Candidate::Acquire { transitions: 3 },
            ),
        ];
        for (what, observed, after, expected) in cases {
            assert_eq!(
                candidate(observed.as_ref(), "a-1", &timing(), t0 + after),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn the_clock_of_a_record_runs_from_when_its_version_was_first_seen() {
        let t0 = Instant::now();
        let first = observe(None, held(Some("b-1"), None, None), "7".into(), t0);
        assert_eq!(first.first_seen, t0);
        // The same version read again later: the clock keeps running.
        let again = observe(
            Some(&first),
            held(Some("b-1"), None, None),
            "7".into(),
            t0 + 9 * S,
        );
        assert_eq!(again.first_seen, t0);
        assert_eq!(
            candidate(Some(&again), "a-1", &timing(), t0 + 15 * S),
            Candidate::Acquire { transitions: 1 }
        );
        // A renew (new version) restarts it, whatever the record's timestamps say.
        let renewed = observe(
            Some(&again),
            held(Some("b-1"), None, None),
            "8".into(),
            t0 + 10 * S,
        );
        assert_eq!(renewed.first_seen, t0 + 10 * S);
        assert_eq!(
            candidate(Some(&renewed), "a-1", &timing(), t0 + 15 * S),
            Candidate::Wait { until: t0 + 25 * S }
        );
    }

    #[test]
    fn leader_decisions_and_the_write_gate() {
        let t0 = Instant::now();
        let cases = [
            ("just renewed", Duration::ZERO, true),
            (
                "a tick before the deadline",
                10 * S - Duration::from_nanos(1),
                true,
            ),
            ("exactly at the renew deadline", 10 * S, false),
            ("frozen for a minute", 60 * S, false),
        ];
        for (what, after, writes) in cases {
            let now = t0 + after;
            assert_eq!(
                may_write(Some(t0), timing().renew_deadline, now),
                writes,
                "{what}"
            );
            let expected = if writes {
                Leading::Renew {
                    deadline: t0 + 10 * S,
                }
            } else {
                Leading::Stop
            };
            assert_eq!(leading(t0, &timing(), now), expected, "{what}");
        }
        assert!(
            !may_write(None, timing().renew_deadline, t0),
            "never renewed: closed"
        );
    }

    /// The fencing argument in numbers: the gate of a holder that renewed at
    /// `t` closes before any candidate that saw that renew may take over.
    #[test]
    fn the_gate_closes_before_any_candidate_may_acquire() {
        let t0 = Instant::now();
        let timing = timing();
        for seen_after in [Duration::ZERO, S / 10, 3 * S] {
            let obs = seen(held(Some("b-1"), Some(15), Some(0)), t0 + seen_after);
            let mut now = t0;
            while now < t0 + 30 * S {
                let may_acquire = matches!(
                    candidate(Some(&obs), "a-1", &timing, now),
                    Candidate::Acquire { .. }
                );
                let holder_writes = may_write(Some(t0), timing.renew_deadline, now);
                assert!(!(may_acquire && holder_writes), "both at {:?}", now - t0);
                now += Duration::from_millis(100);
            }
        }
    }

    #[test]
    fn transitions_count_holder_changes() {
        let cases = [
            (held(None, None, None), 1),
            (held(Some("b-1"), None, Some(0)), 1),
            (held(Some("b-1"), None, Some(41)), 42),
            (held(Some("a-1"), None, Some(41)), 41),
            (held(Some("b-1"), None, Some(-3)), 1),
            (held(Some("b-1"), None, Some(i32::MAX)), i32::MAX),
        ];
        for (record, expected) in cases {
            assert_eq!(next_transitions(&record, "a-1"), expected, "{record:?}");
        }
    }
}
