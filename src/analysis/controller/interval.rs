//! PURE: the interval schedule of an analysis — which intervals exist, which
//! are due at a given time, and when the next one is.
//!
//! ```text
//!  start        judgedFrom = start + warmup                                end
//!    |--warmup--|----interval 1----|----interval 2----| ... |--interval N--|
//!               b0                 b1                 b2          b(N-1)   bN = end
//! ```
//!
//! Interval `k` (1-based) ends at `b_k = judgedFrom + k·interval`, clamped to
//! `end` (so the last interval may be shorter). It is due once `now >= b_k`.
//! Its judgement covers the cumulative window `[judgedFrom, b_k]` (Kayenta's
//! behaviour without a lookback): later intervals see more data, and the
//! last judgement covers the whole judged window.

use chrono::{DateTime, TimeDelta, Utc};

use crate::api::canary_analysis::MIN_INTERVAL;

/// Upper bound on the intervals of one analysis: each is a round of queries,
/// and a retrospective analysis judges them all in one reconcile.
pub const MAX_INTERVALS: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("must be at least 1s")]
    IntervalTooShort,
    #[error(
        "the window ends at {end} but judging starts at {judged_from} (start + warmup): nothing to judge"
    )]
    EmptyWindow {
        judged_from: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error(
        "the window holds {count} intervals, more than the maximum of {MAX_INTERVALS}: use a longer interval"
    )]
    TooManyIntervals { count: i64 },
}

/// The resolved window and its intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub start: DateTime<Utc>,
    pub judged_from: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub interval: TimeDelta,
    /// Number of intervals, >= 1.
    pub total: u32,
}

impl Schedule {
    pub fn new(
        start: DateTime<Utc>,
        warmup: TimeDelta,
        end: DateTime<Utc>,
        interval: TimeDelta,
    ) -> Result<Self, ScheduleError> {
        if !interval.to_std().is_ok_and(|i| i >= MIN_INTERVAL) {
            return Err(ScheduleError::IntervalTooShort);
        }
        let judged_from = start + warmup;
        if end <= judged_from {
            return Err(ScheduleError::EmptyWindow { judged_from, end });
        }
        let span = (end - judged_from).num_milliseconds();
        let step = interval.num_milliseconds();
        // Ceiling division: a partial last interval still counts.
        let count = (span + step - 1) / step;
        if count > i64::from(MAX_INTERVALS) {
            return Err(ScheduleError::TooManyIntervals { count });
        }
        Ok(Schedule {
            start,
            judged_from,
            end,
            interval,
            total: u32::try_from(count).unwrap_or(MAX_INTERVALS),
        })
    }

    /// `b_k`: the end of interval `k` (`b_0` = judgedFrom), clamped to `end`.
    pub fn boundary(&self, k: u32) -> DateTime<Utc> {
        let b = self.judged_from + self.interval * i32::try_from(k).unwrap_or(i32::MAX);
        b.min(self.end)
    }

    /// `[b_{k-1}, b_k]`: where interval `k` (1-based) begins and ends.
    pub fn interval_bounds(&self, k: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.boundary(k.saturating_sub(1)), self.boundary(k))
    }

    /// The cumulative window judged at the end of interval `k`.
    pub fn judged_window(&self, k: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.judged_from, self.boundary(k))
    }

    /// Intervals due at `now` after `done` were judged, in order.
    pub fn due(&self, done: u32, now: DateTime<Utc>) -> Vec<u32> {
        (done.saturating_add(1)..=self.total)
            .take_while(|k| self.boundary(*k) <= now)
            .collect()
    }

    /// When something next happens after `done` intervals were judged: the
    /// window's start if it is still ahead, else the next interval's end;
    /// `None` when every interval is judged.
    pub fn next_wake(&self, done: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if done >= self.total {
            return None;
        }
        if now < self.start {
            return Some(self.start);
        }
        Some(self.boundary(done + 1))
    }

    /// Whether the whole window is in the past at `now` (retrospective analysis).
    pub fn is_retrospective(&self, now: DateTime<Utc>) -> bool {
        self.end <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }
    fn s(secs: i64) -> TimeDelta {
        TimeDelta::seconds(secs)
    }

    #[test]
    fn totals_and_boundaries() {
        // (warmup, end, interval) -> total, last boundary
        let rows = [
            (0, 600, 60, 10, 600),
            (60, 600, 60, 9, 600),
            (0, 610, 60, 11, 610), // partial last interval
            (0, 60, 60, 1, 60),
            (0, 30, 60, 1, 30), // window shorter than one interval
            (120, 600, 240, 2, 600),
        ];
        for (warmup, end, interval, total, last) in rows {
            let sch = Schedule::new(t(0), s(warmup), t(end), s(interval)).unwrap();
            assert_eq!(sch.total, total, "{warmup} {end} {interval}");
            assert_eq!(sch.boundary(sch.total), t(last));
            assert_eq!(sch.boundary(0), t(warmup));
        }
    }

    #[test]
    fn invalid_schedules() {
        assert_eq!(
            Schedule::new(t(0), s(0), t(600), s(0)),
            Err(ScheduleError::IntervalTooShort)
        );
        assert!(matches!(
            Schedule::new(t(0), s(600), t(600), s(60)),
            Err(ScheduleError::EmptyWindow { .. })
        ));
        assert!(matches!(
            Schedule::new(t(0), s(0), t(-5), s(60)),
            Err(ScheduleError::EmptyWindow { .. })
        ));
        assert!(matches!(
            Schedule::new(t(0), s(0), t(100_000), s(1)),
            Err(ScheduleError::TooManyIntervals { count: 100_000 })
        ));
    }

    #[test]
    fn due_intervals_table() {
        // start 0, warmup 60, end 360, interval 60 -> boundaries 120,180,240,300,360
        let sch = Schedule::new(t(0), s(60), t(360), s(60)).unwrap();
        assert_eq!(sch.total, 5);
        let rows: [(u32, i64, &[u32]); 10] = [
            (0, -10, &[]),                // before the start
            (0, 30, &[]),                 // in the warmup
            (0, 119, &[]),                // interval 1 not over
            (0, 120, &[1]),               // exactly at the boundary
            (0, 185, &[1, 2]),            // a restarted operator catches up
            (1, 185, &[2]),               // interval 1 already in status
            (2, 185, &[]),                // nothing due: no write
            (3, 1_000, &[4, 5]),          // past the end
            (5, 1_000, &[]),              // all judged
            (0, 1_000, &[1, 2, 3, 4, 5]), // retrospective: all at once
        ];
        for (done, now, want) in rows {
            assert_eq!(sch.due(done, t(now)), want, "done {done} now {now}");
        }
    }

    #[test]
    fn wake_times() {
        let sch = Schedule::new(t(0), s(60), t(360), s(60)).unwrap();
        assert_eq!(sch.next_wake(0, t(-10)), Some(t(0)));
        assert_eq!(sch.next_wake(0, t(10)), Some(t(120)));
        assert_eq!(sch.next_wake(2, t(185)), Some(t(240)));
        assert_eq!(sch.next_wake(5, t(400)), None);
        assert!(!sch.is_retrospective(t(359)));
        assert!(sch.is_retrospective(t(360)));
    }

    #[test]
    fn windows_are_cumulative_and_intervals_contiguous() {
        let sch = Schedule::new(t(0), s(30), t(330), s(100)).unwrap();
        assert_eq!(sch.total, 3);
        assert_eq!(sch.interval_bounds(1), (t(30), t(130)));
        assert_eq!(sch.interval_bounds(3), (t(230), t(330)));
        assert_eq!(sch.judged_window(2), (t(30), t(230)));
        for k in 2..=sch.total {
            assert_eq!(sch.interval_bounds(k).0, sch.interval_bounds(k - 1).1);
        }
    }
}
