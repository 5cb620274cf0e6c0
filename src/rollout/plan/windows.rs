//! Promotion windows: is a switch to a new revision allowed now, and if not,
//! when does the next window open? Pure (the clock is an argument), so DST and
//! midnight-crossing windows are table-tested.
//!
//! A window belongs to the local day it starts on (`days` filters that day);
//! `end <= start` crosses midnight, `start == end` is the whole day. Local
//! times are read in the window's IANA zone: a start in a DST gap (a local time
//! that does not exist) opens at the first instant after the gap; an ambiguous
//! local time (the repeated hour) is its earlier instant.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::api::{PromotionWindow, Weekday};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowCheck {
    /// No windows configured, or `now` is inside one.
    Open,
    /// Closed; the next window opens at this instant (None: no valid window
    /// opens within the next eight days, e.g. every window is invalid).
    ClosedUntil(Option<DateTime<Utc>>),
}

pub fn check(windows: &[PromotionWindow], now: DateTime<Utc>) -> WindowCheck {
    if windows.is_empty() {
        return WindowCheck::Open;
    }
    let mut next: Option<DateTime<Utc>> = None;
    for window in windows {
        let Some(parsed) = Parsed::new(window) else {
            continue;
        };
        let today = now.with_timezone(&parsed.tz).date_naive();
        // From yesterday (a window crossing midnight may still be open) to a
        // week ahead (every weekday is seen at least once).
        for offset in -1..=8 {
            let Some(day) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            let Some((start, end)) = parsed.instants(day) else {
                continue;
            };
            if start <= now && now < end {
                return WindowCheck::Open;
            }
            if start > now && next.is_none_or(|n| start < n) {
                next = Some(start);
            }
        }
    }
    WindowCheck::ClosedUntil(next)
}

struct Parsed<'a> {
    window: &'a PromotionWindow,
    tz: Tz,
    start: NaiveTime,
    end: NaiveTime,
}

impl<'a> Parsed<'a> {
    /// None for a window validation rejects (bad zone or time): it never opens.
    fn new(window: &'a PromotionWindow) -> Option<Parsed<'a>> {
        Some(Parsed {
            window,
            tz: window.time_zone.parse().ok()?,
            start: parse_time(&window.start)?,
            end: parse_time(&window.end)?,
        })
    }

    /// The window that starts on local `day`, as UTC instants.
    fn instants(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.window.days.is_empty() && !self.window.days.contains(&weekday(day)) {
            return None;
        }
        let end_day = if self.end <= self.start {
            day.succ_opt()?
        } else {
            day
        };
        let start = local_instant(self.tz, day.and_time(self.start))?;
        let end = local_instant(self.tz, end_day.and_time(self.end))?;
        Some((start, end))
    }
}

/// `HH:MM` on a 24-hour clock.
pub fn parse_time(value: &str) -> Option<NaiveTime> {
    if value.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(value, "%H:%M").ok()
}

fn weekday(day: NaiveDate) -> Weekday {
    match day.weekday() {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    }
}

/// A local wall-clock time as an instant: the earlier one when it is
/// ambiguous, the first minute after the gap when it does not exist.
fn local_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=180).find_map(|minutes| {
        tz.from_local_datetime(&(local + Duration::minutes(minutes)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}
