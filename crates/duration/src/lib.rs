//! The one duration grammar of redblack: every duration a user writes (CRD
//! fields of Rollout, CanaryAnalysis and CanaryAnalysisTemplate, the demo
//! app's environment, the CLI's flags) is read by [`parse`], and every
//! duration field of every CRD carries [`PATTERN`], which accepts the same
//! strings.
//!
//! The grammar is Go's `time.ParseDuration` (what Kubernetes users write, and
//! what Argo Rollouts and Flagger read) cut down to what a rollout needs, plus
//! days:
//!
//! ```text
//! duration = 1*( 1*DIGIT unit )        ; e.g. 30s, 1h30m, 500ms, 1d, 0s
//! unit     = "ms" / "s" / "m" / "h" / "d"   ; d = 24h
//! ```
//!
//! No sign, no fractions (`1m30s`, not `1.5m`), no `us`/`ns`, no spaces.
//! Units may repeat and come in any order, as in Go (`1m1h` is 61 minutes).
//! A value over [`MAX`] (100 years) is refused: that bound is the one thing
//! the schema pattern cannot say.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// The schema pattern of every duration field: matches exactly the strings
/// [`parse`] reads (values over [`MAX`] aside).
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

/// The longest duration accepted: 100 years (365-day), far beyond any delay or
/// analysis window, and safely inside what a timestamp can be moved by.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The accepted form, for error messages.
pub const FORM: &str =
    "whole numbers each followed by a unit (ms, s, m, h or d), e.g. 30s, 5m, 1h30m, 500ms or 1d";

/// Why a string is not a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not in the grammar (the schema pattern refuses it too).
    Syntax(String),
    /// In the grammar, but longer than [`MAX`].
    TooLong(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(text) => write!(f, "{text:?} is not a duration: write {FORM}"),
            Error::TooLong(text) => {
                write!(
                    f,
                    "{text:?} is longer than the maximum duration of 100 years"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Milliseconds per unit.
fn unit_millis(unit: &str) -> u128 {
    match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 86_400_000, // "d"
    }
}

/// Reads a duration of the grammar above.
pub fn parse(text: &str) -> Result<Duration, Error> {
    let syntax = || Error::Syntax(text.to_owned());
    // First the whole syntax, so that a string the pattern refuses is always
    // a `Syntax` error, however large its numbers.
    let mut parts: Vec<(&str, &str)> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(syntax());
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = if after.starts_with("ms") {
            2
        } else if after.starts_with(['s', 'm', 'h', 'd']) {
            1
        } else {
            return Err(syntax());
        };
        let (unit, after) = after.split_at(unit_len);
        parts.push((number, unit));
        rest = after;
    }
    if parts.is_empty() {
        return Err(syntax());
    }
    let max = MAX.as_millis();
    let mut total: u128 = 0;
    for (number, unit) in parts {
        let significant = number.trim_start_matches('0');
        // More digits than MAX has milliseconds: too long whatever the unit.
        let value = match significant.len() {
            0 => 0,
            1..=20 => significant.parse::<u128>().map_err(|_| syntax())?,
            _ => return Err(Error::TooLong(text.to_owned())),
        };
        total += value * unit_millis(unit);
        if total > max {
            return Err(Error::TooLong(text.to_owned()));
        }
    }
    Ok(Duration::from_millis(
        u64::try_from(total).map_err(|_| Error::TooLong(text.to_owned()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    fn pattern() -> &'static regex::Regex {
        static RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(PATTERN).unwrap());
        &RE
    }

    #[test]
    fn reads_the_grammar() {
        let ok = [
            ("0s", 0),
            ("0ms", 0),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1h30m", 5_400_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1s500ms", 1_500),
            ("1500ms", 1_500),
            ("05m", 300_000),
            ("1m1h", 3_660_000),
            ("1m1m", 120_000),
            ("1d2h3m4s5ms", 93_784_005),
            ("36500d", MAX.as_millis() as u64),
        ];
        for (text, millis) in ok {
            assert_eq!(parse(text), Ok(Duration::from_millis(millis)), "{text}");
        }
    }

    /// Both sides of the contract on one table: the schema pattern and the
    /// parser accept the same strings; only a too-long value is the parser's alone.
    #[test]
    fn the_pattern_accepts_exactly_what_the_parser_reads() {
        let re = pattern();
        let accepted = [
            "0s",
            "30s",
            "5m",
            "1h30m",
            "500ms",
            "1d",
            "1h30m15s250ms",
            "007s",
            "1m1h",
        ];
        let refused = [
            "",
            "0",
            "5",
            "m",
            "ms",
            "s5",
            "5x",
            "5 m",
            " 5m",
            "5m ",
            "1h 30m",
            "1.5m",
            ".5s",
            "-1s",
            "+1s",
            "1us",
            "1µs",
            "1ns",
            "1w",
            "1y",
            "1M",
            "5MS",
            "5S",
            "1H",
            "2min",
            "1hour",
            "1sec",
            "5mss",
            "5msm",
            "5ms5",
            "1h30",
            "PT5M",
            "5\u{0663}s",
        ];
        for text in accepted {
            assert!(re.is_match(text), "pattern refuses {text:?}");
            assert!(parse(text).is_ok(), "parser refuses {text:?}");
        }
        for text in refused {
            assert!(!re.is_match(text), "pattern accepts {text:?}");
            assert_eq!(parse(text), Err(Error::Syntax(text.to_owned())), "{text:?}");
        }
        for text in [
            "36501d",
            "876001h",
            "99999999999999999999999999999999999999999s",
        ] {
            assert!(re.is_match(text), "pattern refuses {text:?}");
            assert_eq!(
                parse(text),
                Err(Error::TooLong(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn errors_say_the_accepted_form() {
        let syntax = parse("1.5m").unwrap_err().to_string();
        assert_eq!(
            syntax,
            "\"1.5m\" is not a duration: write whole numbers each followed by a unit (ms, s, m, h or d), e.g. 30s, 5m, 1h30m, 500ms or 1d"
        );
        let long = parse("36501d").unwrap_err().to_string();
        assert!(long.contains("maximum duration of 100 years"), "{long}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any string over the grammar's alphabet (and its usual mistakes):
        /// the pattern matches iff the parser reads it, or finds it too long.
        #[test]
        fn pattern_and_parser_agree(text in "[0-9smhdu.µ +-]{0,12}") {
            let matched = pattern().is_match(&text);
            match parse(&text) {
                Ok(_) => prop_assert!(matched, "parser reads {text:?}, pattern refuses it"),
                Err(Error::TooLong(_)) => prop_assert!(matched, "too long but off-pattern: {text:?}"),
                Err(Error::Syntax(_)) => prop_assert!(!matched, "pattern matches {text:?}, parser refuses it"),
            }
        }

        /// Every sum of parts, written in any order and unit mix, reads back.
        #[test]
        fn sums_of_parts_read_back(parts in proptest::collection::vec((0u64..100_000, 0usize..5), 1..6)) {
            let units = ["ms", "s", "m", "h", "d"];
            let per = [1u64, 1_000, 60_000, 3_600_000, 86_400_000];
            let text: String = parts.iter().map(|(n, u)| format!("{n}{}", units[*u])).collect();
            let millis: u64 = parts.iter().map(|(n, u)| n * per[*u]).sum();
            let expected = Duration::from_millis(millis);
            if expected <= MAX {
                prop_assert_eq!(parse(&text), Ok(expected));
            } else {
                prop_assert_eq!(parse(&text), Err(Error::TooLong(text.clone())));
            }
            prop_assert!(pattern().is_match(&text));
        }
    }
}
