//! The operator image (`Dockerfile`) against the chart that runs it: no
//! container engine exists here to build it, so what can drift is checked
//! as text — the runtime user is the chart's `runAsUser`/`runAsGroup`, the
//! entrypoint is the `redblack` binary, the chart does not override it, the
//! default command is the verb the chart passes first, and every flag the
//! chart passes is one `redblack controller` accepts.

mod tools;

use tools::{helm_template, root};

use clap::Parser;

use serde_yaml::Value;

/// The final stage's instructions: (keyword, rest of the line), continuation
/// lines joined.
fn final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        lines.push(std::mem::take(&mut current));
    }
    let start = lines
        .iter()
        .rposition(|l| l.to_uppercase().starts_with("FROM "))
        .expect("a FROM");
    lines[start..]
        .iter()
        .map(|l| {
            let (keyword, rest) = l.split_once(' ').unwrap_or((l, ""));
            (keyword.to_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

/// The one instruction `keyword` of the final stage.
fn instruction(stage: &[(String, String)], keyword: &str) -> String {
    let found: Vec<&String> = stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {keyword} in the final stage: {found:?}"
    );
    found[0].clone()
}

/// An exec-form (JSON array) instruction's words: the shell form would run
/// `/bin/sh`, which the runtime image does not have.
fn exec_form(stage: &[(String, String)], keyword: &str) -> Vec<String> {
    let rest = instruction(stage, keyword);
    serde_json::from_str(&rest)
        .unwrap_or_else(|e| panic!("{keyword} must be a JSON array (exec form): {rest}: {e}"))
}

fn rendered_deployment() -> Value {
    rendered_deployment_with(&[])
}

fn rendered_deployment_with(extra: &[&str]) -> Value {
    let deployment = helm_template("ops", extra)
        .into_iter()
        .find(|v| v["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    serde_json::from_value(deployment).expect("a YAML value")
}

#[test]
fn the_image_runs_as_the_charts_user() {
    let deployment = rendered_deployment();
    let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
    let user = pod["runAsUser"].as_u64().expect("runAsUser");
    let group = pod["runAsGroup"].as_u64().expect("runAsGroup");
    let stage = final_stage();
    assert_eq!(instruction(&stage, "USER"), format!("{user}:{group}"));
    assert_ne!(user, 0, "non-root");
    assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true));
}

#[test]
fn the_image_starts_the_verb_and_flags_the_chart_passes() {
    let deployment = rendered_deployment();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container.get("command").is_none(),
        "the chart keeps the image's ENTRYPOINT"
    );
    let args: Vec<String> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect();
    let stage = final_stage();
    let entrypoint = exec_form(&stage, "ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "{entrypoint:?}");
    assert!(
        entrypoint[0].ends_with("/redblack"),
        "ENTRYPOINT runs the redblack binary: {entrypoint:?}"
    );
    // The binary's path is where the build stage put it.
    let copy = instruction(&stage, "COPY");
    assert!(copy.ends_with(&format!(" {}", entrypoint[0])), "{copy}");
    assert_eq!(exec_form(&stage, "CMD"), vec![args[0].clone()]);
    assert_eq!(args[0], "controller");

    // The chart's arguments parse as the binary parses them: every flag
    // known, every value accepted (`--leader-elect=true`, `:8080`, ...).
    let argv = std::iter::once("redblack".to_owned()).chain(args.iter().cloned());
    match redblack::cli::Cli::try_parse_from(argv) {
        Ok(cli) => assert!(
            matches!(cli.command, redblack::cli::Command::Controller(_)),
            "the chart runs `redblack controller`: {args:?}"
        ),
        Err(e) => panic!("the chart's args do not parse: {args:?}\n{e}"),
    }
}

#[test]
fn the_build_stage_builds_the_operator_alone() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        text.contains("--no-default-features") && text.contains("--bin redblack"),
        "the image holds the operator-only build"
    );
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    for excluded in ["target", ".git", ".cache"] {
        assert!(
            ignore.lines().any(|l| l.trim() == excluded),
            ".dockerignore leaves out {excluded}"
        );
    }
}

/// Every `logging.format` the chart's values.schema.json allows renders
/// arguments the binary accepts (values.yaml once advertised `text`, which
/// it refuses: the upgraded operator pod crash-looped; tests/install.rs).
#[test]
fn every_log_format_the_values_schema_allows_parses() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/redblack/values.schema.json"))
            .expect("values.schema.json"),
    )
    .expect("JSON");
    let formats = schema["properties"]["logging"]["properties"]["format"]["enum"]
        .as_array()
        .expect("an enum of log formats")
        .clone();
    assert!(!formats.is_empty());
    for format in formats {
        let format = format.as_str().expect("a string");
        let set = format!("logging.format={format}");
        let deployment = rendered_deployment_with(&["--set", &set]);
        let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect();
        let argv = std::iter::once("redblack".to_owned()).chain(args.iter().cloned());
        if let Err(e) = redblack::cli::Cli::try_parse_from(argv) {
            panic!("logging.format={format}: the chart's args do not parse: {args:?}\n{e}");
        }
    }
}
