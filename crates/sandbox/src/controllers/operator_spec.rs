//! What an operator container asks for: a pod whose image is the operator's
//! (`redblack/redblack[:tag][@digest]`, optionally behind a registry host)
//! runs the `redblack` binary with the container's command line, and its
//! ports moved to free loopback ports. Pure: every rule is a table test.
//!
//! The image (see the Dockerfile) has ENTRYPOINT `/usr/local/bin/redblack`
//! and CMD `controller`; Kubernetes' rule applies: `command` replaces the
//! ENTRYPOINT (and drops the CMD), `args` replaces the CMD.
//!
//! Ports: every pod of the sandbox shares 127.0.0.1, so each declared TCP
//! `containerPort`, and each port named by the controller's address flags
//! (`--metrics-addr`, `--health-addr`, default `:8080` and `:8081`), gets a
//! free loopback port of its own, and the address flags are rewritten to it
//! (`:8080`, `0.0.0.0:8080` or `HOST:8080` → `127.0.0.1:<mapped>`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::process_spec::{SpecError, repository_tag};

/// The operator image's repository (the chart's `image.repository`).
pub const OPERATOR_REPOSITORY: &str = "redblack/redblack";
/// The image's ENTRYPOINT (Dockerfile).
pub const IMAGE_ENTRYPOINT: &str = "/usr/local/bin/redblack";
/// The image's CMD (Dockerfile).
pub const IMAGE_CMD: &[&str] = &["controller"];
/// The controller's address flags and their defaults (src/cli/controller.rs).
pub const ADDRESS_FLAGS: &[(&str, u16)] = &[("--metrics-addr", 8080), ("--health-addr", 8081)];
/// Where the sandbox records the port mapping: `8080=41234,8081=41235`
/// (container port = loopback port), in containerPort order.
pub const PORTS_ANNOTATION: &str = "sandbox.redblack.io/ports";

/// Is `image` the operator's? `Ok(Some(tag))` if so (`latest` without a tag,
/// as a registry would pull), `Ok(None)` for any other image.
pub fn operator_tag(image: &str) -> Result<Option<String>, SpecError> {
    repository_tag(image, OPERATOR_REPOSITORY)
        .map(|found| found.map(|tag| tag.unwrap_or_else(|| "latest".into())))
}

fn strings(container: &Value, field: &str) -> Result<Option<Vec<String>>, SpecError> {
    match container.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    SpecError::CreateContainerConfigError(format!("{field}: {v} is not a string"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(SpecError::CreateContainerConfigError(format!(
            "{field} must be a list of strings, got {other}"
        ))),
    }
}

/// The arguments the `redblack` binary gets (argv without argv[0]), before
/// `$(VAR)` expansion. A `command` naming another program fails as the
/// runtime would: the image holds nothing else.
pub fn arguments(container: &Value) -> Result<Vec<String>, SpecError> {
    let command = strings(container, "command")?;
    let args = strings(container, "args")?;
    match command {
        None => Ok(args.unwrap_or_else(|| IMAGE_CMD.iter().map(|s| s.to_string()).collect())),
        Some(command) => {
            let program = command.first().map(String::as_str).unwrap_or("");
            if program != IMAGE_ENTRYPOINT && program != "redblack" {
                return Err(SpecError::RunContainerError(format!(
                    "exec: {program:?}: executable file not found in $PATH: the \
                     {OPERATOR_REPOSITORY} image holds only {IMAGE_ENTRYPOINT}"
                )));
            }
            let mut out: Vec<String> = command[1..].to_vec();
            out.extend(args.unwrap_or_default());
            Ok(out)
        }
    }
}

/// A declared `containerPort` (TCP only: nothing else is served on loopback).
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredPort {
    pub name: Option<String>,
    pub container_port: u16,
}

pub fn declared_ports(container: &Value) -> Vec<DeclaredPort> {
    container
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            p.get("protocol")
                .and_then(Value::as_str)
                .is_none_or(|proto| proto == "TCP")
        })
        .filter_map(|p| {
            Some(DeclaredPort {
                name: p.get("name").and_then(Value::as_str).map(str::to_string),
                container_port: u16::try_from(p.get("containerPort")?.as_u64()?).ok()?,
            })
        })
        .collect()
}

/// Is this the `controller` verb (the only one whose addresses are known)?
fn runs_controller(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "controller")
}

/// Where each address flag's value is: (index in args, index of the value
/// within a `--flag=value` arg or `None` for a separate arg).
fn flag_values(args: &[String]) -> Vec<(usize, &'static str, bool)> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            break;
        }
        for (flag, _) in ADDRESS_FLAGS {
            if arg == *flag && i + 1 < args.len() {
                out.push((i + 1, *flag, false));
                i += 1;
            } else if arg.strip_prefix(flag).is_some_and(|r| r.starts_with('=')) {
                out.push((i, *flag, true));
            }
        }
        i += 1;
    }
    out
}

/// The port of `:PORT` or `IP:PORT` / `[IP]:PORT`; `None` if it is not one.
fn address_port(value: &str) -> Option<u16> {
    if let Some(port) = value.strip_prefix(':') {
        return port.parse().ok();
    }
    value.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
}

/// The controller's arguments with every address flag present: one left out
/// gets its default, written out so that it can be moved.
pub fn with_address_defaults(args: &[String]) -> Vec<String> {
    let mut out = args.to_vec();
    if !runs_controller(args) {
        return out;
    }
    let present = flag_values(args);
    for (flag, default) in ADDRESS_FLAGS {
        if !present.iter().any(|(_, f, _)| f == flag) {
            // Before a `--`, if any, so that it stays a flag.
            let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
            out.insert(at, format!("{flag}=:{default}"));
        }
    }
    out
}

/// The container ports the process will listen on: the declared ones, then
/// those of the address flags that were not declared.
pub fn ports_to_map(args: &[String], declared: &[DeclaredPort]) -> Vec<u16> {
    let mut ports: Vec<u16> = declared.iter().map(|p| p.container_port).collect();
    if runs_controller(args) {
        for (i, _, inline) in flag_values(args) {
            let value = value_of(&args[i], inline);
            if let Some(port) = address_port(value).filter(|p| *p != 0)
                && !ports.contains(&port)
            {
                ports.push(port);
            }
        }
    }
    ports
}

fn value_of(arg: &str, inline: bool) -> &str {
    if inline {
        arg.split_once('=').map_or("", |(_, v)| v)
    } else {
        arg
    }
}

/// Rewrites the address flags to `127.0.0.1:<mapped>`; values that are not
/// `:PORT` or `IP:PORT`, or whose port is not mapped, are left as written.
pub fn rewrite_addresses(args: &[String], map: &BTreeMap<u16, u16>) -> Vec<String> {
    let mut out = args.to_vec();
    if !runs_controller(args) {
        return out;
    }
    for (i, flag, inline) in flag_values(args) {
        let Some(mapped) = address_port(value_of(&args[i], inline)).and_then(|p| map.get(&p))
        else {
            continue;
        };
        let value = format!("127.0.0.1:{mapped}");
        out[i] = if inline {
            format!("{flag}={value}")
        } else {
            value
        };
    }
    out
}

/// `8080=41234,8081=41235`
pub fn ports_annotation(map: &[(u16, u16)]) -> String {
    map.iter()
        .map(|(c, h)| format!("{c}={h}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads `ports_annotation`'s format (container port → loopback port).
pub fn parse_ports_annotation(value: &str) -> BTreeMap<u16, u16> {
    value
        .split(',')
        .filter_map(|pair| {
            let (c, h) = pair.split_once('=')?;
            Some((c.trim().parse().ok()?, h.trim().parse().ok()?))
        })
        .collect()
}

/// A probe's or Service's `port`: a number, or the name of a declared port.
pub fn resolve_port(port: &Value, declared: &[DeclaredPort]) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => match s.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => declared
                .iter()
                .find(|p| p.name.as_deref() == Some(s))
                .map(|p| p.container_port),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn image_recognition() {
        for (image, want) in [
            ("redblack/redblack:dev", Some("dev")),
            ("redblack/redblack:0.1.0", Some("0.1.0")),
            ("ghcr.io/redblack/redblack:v1", Some("v1")),
            ("localhost:5000/redblack/redblack:v1@sha256:abc", Some("v1")),
            ("redblack/redblack", Some("latest")),
            ("redblack/redblack@sha256:abc", Some("latest")),
            ("redblack/demo-app:v1", None),
            ("redblack/redblack-extra:v1", None),
            ("notredblack/redblack:v1", None),
            ("nginx", None),
        ] {
            assert_eq!(operator_tag(image).unwrap().as_deref(), want, "{image}");
        }
        let err = operator_tag("redblack/redblack:-bad").unwrap_err();
        assert_eq!(err.reason(), "InvalidImageName");
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        assert_eq!(arguments(&json!({})).unwrap(), v(&["controller"]));
        assert_eq!(arguments(&json!({"args": []})).unwrap(), v(&["controller"]));
        assert_eq!(
            arguments(&json!({"args": ["controller", "--leader-elect=true"]})).unwrap(),
            v(&["controller", "--leader-elect=true"])
        );
        assert_eq!(
            arguments(&json!({"command": ["/usr/local/bin/redblack"]})).unwrap(),
            Vec::<String>::new(),
            "command drops the CMD"
        );
        assert_eq!(
            arguments(&json!({"command": ["redblack", "controller"], "args": ["-n", "x"]}))
                .unwrap(),
            v(&["controller", "-n", "x"])
        );
        let err = arguments(&json!({"command": ["/bin/sh", "-c", "x"]})).unwrap_err();
        assert_eq!(err.reason(), "RunContainerError");
        assert!(err.to_string().contains("/bin/sh"), "{err}");
        assert!(arguments(&json!({"args": [1]})).is_err());
    }

    #[test]
    fn ports_and_address_rewriting() {
        let declared = declared_ports(&json!({"ports": [
            {"name": "metrics", "containerPort": 8080},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}));
        assert_eq!(declared.len(), 2);
        let chart = v(&[
            "controller",
            "--metrics-addr",
            ":8080",
            "--health-addr=0.0.0.0:8081",
            "--log-format",
            "json",
        ]);
        let args = with_address_defaults(&chart);
        assert_eq!(args, chart, "nothing to add");
        assert_eq!(ports_to_map(&args, &declared), [8080, 8081]);
        let map = BTreeMap::from([(8080, 41000), (8081, 41001)]);
        assert_eq!(
            rewrite_addresses(&args, &map),
            v(&[
                "controller",
                "--metrics-addr",
                "127.0.0.1:41000",
                "--health-addr=127.0.0.1:41001",
                "--log-format",
                "json",
            ])
        );

        // Defaults made explicit (and so moved); an undeclared port is mapped too.
        let bare =
            with_address_defaults(&v(&["controller", "--health-addr", "[::]:9000", "--", "x"]));
        assert_eq!(
            bare,
            v(&[
                "controller",
                "--health-addr",
                "[::]:9000",
                "--metrics-addr=:8080",
                "--",
                "x"
            ])
        );
        assert_eq!(ports_to_map(&bare, &[]), [9000, 8080]);
        let map = BTreeMap::from([(9000, 1), (8080, 2)]);
        assert_eq!(
            rewrite_addresses(&bare, &map),
            v(&[
                "controller",
                "--health-addr",
                "127.0.0.1:1",
                "--metrics-addr=127.0.0.1:2",
                "--",
                "x"
            ])
        );

        // Not addresses, another verb, or after `--`: untouched.
        let odd = v(&[
            "controller",
            "--metrics-addr",
            "localhost:8080",
            "--",
            "--health-addr",
            ":1",
        ]);
        assert_eq!(
            rewrite_addresses(&odd, &BTreeMap::from([(8080, 5), (1, 6)])),
            odd
        );
        let other = v(&["crd", "--metrics-addr", ":8080"]);
        assert_eq!(with_address_defaults(&other), other);
        assert_eq!(
            rewrite_addresses(&other, &BTreeMap::from([(8080, 5)])),
            other
        );
    }

    #[test]
    fn annotation_and_named_ports() {
        let text = ports_annotation(&[(8080, 41000), (8081, 41001)]);
        assert_eq!(text, "8080=41000,8081=41001");
        assert_eq!(
            parse_ports_annotation(&text),
            BTreeMap::from([(8080, 41000), (8081, 41001)])
        );
        assert!(parse_ports_annotation("junk").is_empty());
        let declared = vec![DeclaredPort {
            name: Some("health".into()),
            container_port: 8081,
        }];
        assert_eq!(resolve_port(&json!("health"), &declared), Some(8081));
        assert_eq!(resolve_port(&json!(9000), &declared), Some(9000));
        assert_eq!(resolve_port(&json!("9001"), &declared), Some(9001));
        assert_eq!(resolve_port(&json!("nope"), &declared), None);
    }
}
