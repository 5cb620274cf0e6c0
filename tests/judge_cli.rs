//! `redblack judge` end to end: table and JSON output, and clear errors with exit code 1.

use std::process::Command;

fn run(input: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input.json");
    std::fs::write(&path, input).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_redblack"))
        .arg("judge")
        .arg("--input")
        .arg(&path)
        .args(args)
        .output()
        .expect("run redblack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn input() -> String {
    let base: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i % 13)).collect();
    let slow: Vec<f64> = base.iter().map(|v| v * 1.5).collect();
    let mut gappy: Vec<serde_json::Value> = base.iter().map(|v| serde_json::json!(v)).collect();
    gappy[3] = serde_json::Value::Null;
    serde_json::json!({
        "config": {
            "scoreThresholds": {"marginal": 50, "pass": 90},
            "metrics": [
                {"name": "latency", "direction": "increase"},
                {"name": "cpu"},
                {"name": "errors", "kind": "rate", "direction": "increase"}
            ]
        },
        "metrics": [
            {"name": "latency", "canary": slow, "baseline": base},
            {"name": "cpu", "canary": gappy, "baseline": base},
            {"name": "errors",
             "canary": {"numerator": [0, 1, 0], "denominator": [1000, 1000, 1000]},
             "baseline": {"numerator": [0, 0, 1], "denominator": [1000, 1000, 1000]}}
        ]
    })
    .to_string()
}

#[test]
fn table_output_shows_score_and_hot_metrics_first() {
    let (code, out, err) = run(&input(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Canary Score: 66.67% MARGINAL"), "{out}");
    // The tolerance decides which shifts fail: the header says which was used.
    assert!(
        out.contains("(confidence 0.98, mode fixed, tolerance 0.25, marginal 50, pass 90)"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("METRIC"))
        .expect("header");
    assert!(
        lines[header + 1].starts_with("latency") && lines[header + 1].contains("High"),
        "{out}"
    );
    // Aligned columns: RESULT starts at the same offset on every row.
    let col = lines[header].find("RESULT").expect("RESULT column");
    assert!(
        lines[header + 1..header + 4]
            .iter()
            .all(|l| l.len() > col && l.as_bytes()[col - 1] == b' ')
    );
}

#[test]
fn json_output_carries_every_number() {
    let (code, out, err) = run(&input(), &["--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["band"], "Marginal");
    let cpu = &v["metrics"][1];
    assert_eq!(cpu["canaryNanRemoved"], 1);
    assert!(cpu["location"]["pValue"].is_number());
    assert_eq!(v["metrics"][2]["rate"]["canaryNumerator"], 1.0);
}

#[test]
fn malformed_json_reports_line_and_column() {
    let (code, _, err) = run("{\n  \"config\": {,\n}", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("line 2 column"), "{err}");
}

#[test]
fn unknown_field_and_invalid_config_fail_clearly() {
    let (code, _, err) = run(
        r#"{"config": {"metrics": [{"name": "a", "colour": 1}]}, "metrics": []}"#,
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `colour`"), "{err}");
    let (code, _, err) = run(
        r#"{"config": {"confidence": 2, "scoreThresholds": {"marginal": 90, "pass": 80}, "metrics": [{"name": "a"}]}, "metrics": []}"#,
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("confidence: must be in (0, 1)") && err.contains("scoreThresholds.marginal"),
        "{err}"
    );
}
