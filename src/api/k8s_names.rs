//! Kubernetes' name and label syntax, and the one rule that fits a derived
//! name into a limit. Spec validation (`validate.rs`) checks user input with
//! these; the planner's names (`rollout::plan::names`) are built with
//! [`fit`] so that every name and label value it writes passes them.
//!
//! The syntaxes and limits are the API server's (`k8s.io/apimachinery`
//! `pkg/util/validation`): a DNS-1123 subdomain (≤ 253; ReplicaSets, custom
//! resources), a DNS-1123 label (≤ 63; container names), a DNS-1035 label
//! (≤ 63, starts with a letter; Services), a label key (optional DNS
//! subdomain prefix ≤ 253, `/`, name ≤ 63) and a label value (≤ 63, may be
//! empty).

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// A DNS-1123 subdomain: object names of most kinds (ReplicaSets, custom resources).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// A DNS-1123 / DNS-1035 label: container names, Service names.
pub const DNS_LABEL_MAX: usize = 63;
/// A label value, and the name part of a label key.
pub const LABEL_VALUE_MAX: usize = 63;
/// A pod is named `<ReplicaSet>-<5 random characters>`, so a ReplicaSet name
/// leaves room for 6 characters. (The API server's name generator also cuts
/// the `<ReplicaSet>-` prefix to 58 characters, so pod names and hostnames
/// stay ≤ 63 whatever the ReplicaSet is called.)
pub const REPLICA_SET_NAME_MAX: usize = DNS1123_SUBDOMAIN_MAX - 6;
/// Hex digits of sha256 a shortened name carries.
pub const HASH_HEX: usize = 8;

const LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const LABEL_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn whole(pattern: &str) -> Regex {
    // The patterns are constants of this file; a typo fails every test.
    Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

static DNS1123_LABEL: LazyLock<Regex> = LazyLock::new(|| whole(LABEL));
static DNS1123_SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| whole(&format!(r"{LABEL}(\.{LABEL})*")));
static DNS1035_LABEL: LazyLock<Regex> = LazyLock::new(|| whole("[a-z]([-a-z0-9]*[a-z0-9])?"));
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| whole(LABEL_NAME));

/// A DNS-1123 label: lower-case alphanumerics and '-', alphanumeric at both
/// ends, at most 63 characters (container names).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= DNS_LABEL_MAX && DNS1123_LABEL.is_match(s)
}

/// A DNS-1123 subdomain: DNS-1123 labels joined by '.', at most 253
/// characters (ReplicaSet and custom resource names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.is_match(s)
}

/// A DNS-1035 label: as a DNS-1123 label, but starting with a letter
/// (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    s.len() <= DNS_LABEL_MAX && DNS1035_LABEL.is_match(s)
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.',
/// alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || (s.len() <= LABEL_VALUE_MAX && QUALIFIED_NAME.is_match(s))
}

/// Why `key` is not a label key (`[prefix/]name`), or None when it is one.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        return Some(format!(
            "prefix {prefix:?} is not a DNS subdomain (lower-case alphanumerics, '-' and '.', at most {DNS1123_SUBDOMAIN_MAX} characters)"
        ));
    }
    if name.is_empty() || name.len() > LABEL_VALUE_MAX || !QUALIFIED_NAME.is_match(name) {
        return Some(format!(
            "name part {name:?} must be 1 to {LABEL_VALUE_MAX} alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    None
}

/// `base + suffix` when that is at most `max` characters and `ok` accepts
/// it; otherwise the shortened form
/// `<readable prefix of base>-<8 hex digits of sha256(base)><suffix>`, at
/// most `max` characters. Deterministic; names that fit never change.
///
/// The readable prefix is `base` with every character outside `[a-z0-9-]`
/// ('.') turned into '-', prefixed with `r-` unless it starts with a letter
/// when `letter_first`, cut to the room left and stripped of trailing '-'.
/// `suffix` must start with '-' (or be empty) and end with an alphanumeric.
pub fn fit(
    base: &str,
    suffix: &str,
    max: usize,
    letter_first: bool,
    ok: fn(&str) -> bool,
) -> String {
    let full = format!("{base}{suffix}");
    if full.len() <= max && ok(&full) {
        return full;
    }
    let digest = hex::encode(Sha256::digest(base.as_bytes()));
    let hash = &digest[..HASH_HEX];
    let mut readable: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if letter_first && !readable.starts_with(|c: char| c.is_ascii_lowercase()) {
        readable.insert_str(0, "r-");
    }
    let room = max.saturating_sub(suffix.len() + 1 + HASH_HEX);
    readable.truncate(room);
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        // Only for a `max` too small for a prefix (not one of ours) or a base
        // without an alphanumeric.
        let head = if letter_first { "r" } else { "" };
        let sep = if head.is_empty() { "" } else { "-" };
        return format!("{head}{sep}{hash}{suffix}");
    }
    format!("{readable}-{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntaxes_accept_and_refuse_as_the_api_server() {
        for ok in ["a", "web", "web-1", "1web", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        for ok in [
            "a",
            "web.v2",
            "a.b.c",
            "1.2",
            &format!("{}.{}", "a".repeat(63), "b".repeat(189)),
        ] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            "a-.b",
            "Web",
            &"a".repeat(254),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        for ok in ["a", "web-canary", &"a".repeat(63)] {
            assert!(is_dns1035_label(ok), "{ok}");
        }
        for bad in ["1web", "web.v2-canary", "web-", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad), "{bad}");
        }
        for ok in ["", "a", "Web_1.2-x", &"A".repeat(63)] {
            assert!(is_label_value(ok), "{ok}");
        }
        for bad in ["-a", "a-", "_a", "a b", "a/b", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad}");
        }
        for ok in ["app", "app.kubernetes.io/name", "example.com/Tier_1", "a/b"] {
            assert_eq!(label_key_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "Example.com/a",
            "a/b/c",
            "-a",
            &"a".repeat(64),
            "a b",
        ] {
            assert!(label_key_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn fit_keeps_what_fits_and_shortens_the_rest() {
        assert_eq!(
            fit("web", "-canary", 63, true, is_dns1035_label),
            "web-canary"
        );
        let dotted = fit("web.v2", "-canary", 63, true, is_dns1035_label);
        assert!(
            dotted.starts_with("web-v2-") && dotted.ends_with("-canary"),
            "{dotted}"
        );
        assert!(is_dns1035_label(&dotted), "{dotted}");
        let digit = fit("1web", "-canary", 63, true, is_dns1035_label);
        assert!(digit.starts_with("r-1web-"), "{digit}");
        let long = "a".repeat(250);
        let rs = fit(
            &long,
            "-bcdfghjklm",
            REPLICA_SET_NAME_MAX,
            false,
            is_dns1123_subdomain,
        );
        assert_eq!(rs.len(), REPLICA_SET_NAME_MAX);
        assert!(
            rs.ends_with("-bcdfghjklm") && is_dns1123_subdomain(&rs),
            "{rs}"
        );
        assert_eq!(
            rs,
            fit(
                &long,
                "-bcdfghjklm",
                REPLICA_SET_NAME_MAX,
                false,
                is_dns1123_subdomain
            )
        );
        let other = fit(
            &"a".repeat(249),
            "-bcdfghjklm",
            REPLICA_SET_NAME_MAX,
            false,
            is_dns1123_subdomain,
        );
        assert_ne!(rs, other);
        // A prefix cut at a '.' does not end in '.'.
        let dots = fit(
            "ab.".repeat(80).trim_end_matches('.'),
            "",
            63,
            false,
            is_label_value,
        );
        assert!(is_label_value(&dots), "{dots}");
    }
}
