//! The exact rate test against scipy's binomtest (reference vectors from
//! crates/judge/gen_vectors.py).

use redblack_judge::Direction;
use redblack_judge::rates::rate_test;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    canary: [f64; 2],
    baseline: [f64; 2],
    confidence: f64,
    p_higher: f64,
    p_lower: f64,
    ratio_lower: f64,
    ratio_upper: Option<f64>,
}

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs()) || (a - b).abs() < 1e-300
}

#[test]
fn rate_test_matches_scipy_binomtest() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rate_vectors.json");
    let text = std::fs::read_to_string(path).expect("vectors file");
    let cases = serde_json::from_str::<Vectors>(&text).expect("parse").cases;
    assert!(cases.len() > 100, "too few vectors: {}", cases.len());
    for c in &cases {
        let name = format!("{:?} vs {:?} @{}", c.canary, c.baseline, c.confidence);
        let t = rate_test(
            c.canary[0],
            c.canary[1],
            c.baseline[0],
            c.baseline[1],
            Direction::Either,
            c.confidence,
        )
        .expect("ordinary counts are evaluable");
        assert!(
            close(t.p_higher, c.p_higher, 1e-9),
            "{name}: p_higher {:e} vs {:e}",
            t.p_higher,
            c.p_higher
        );
        assert!(
            close(t.p_lower, c.p_lower, 1e-9),
            "{name}: p_lower {:e} vs {:e}",
            t.p_lower,
            c.p_lower
        );
        let lo = t.ratio_lower.expect("lower bound is always defined");
        assert!(
            close(lo, c.ratio_lower, 1e-6),
            "{name}: ratio lower {lo} vs {}",
            c.ratio_lower
        );
        match (t.ratio_upper, c.ratio_upper) {
            (Some(a), Some(b)) => assert!(close(a, b, 1e-6), "{name}: ratio upper {a} vs {b}"),
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{name}: upper boundedness"),
        }
    }
}
