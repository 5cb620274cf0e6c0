//! Runs the shipped Argo CD health checks under a real Lua 5.1 interpreter
//! (Debian's `lua5.1`, installed by `hack/deps.sh`), the way Argo CD does:
//! the object as a Lua table in the global `obj`, the script's return value
//! read as `hs.status` / `hs.message`.
//!
//! JSON becomes a Lua table literal generated here (hand-written: a few
//! lines, and no crate emits Lua source): objects are tables with string
//! keys, arrays are 1-based sequences, `null` is left out (Argo CD's
//! conversion gives `nil` for it too), numbers keep their JSON text.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The interpreter: `lua5.1` on PATH (hack/deps.sh installs it).
pub const INTERPRETER: &str = "lua5.1";

/// A Lua 5.1 string literal: printable ASCII as is, every other byte as a
/// decimal escape (`\ddd`, the only numeric escape Lua 5.1 knows).
fn string(s: &str, out: &mut String) {
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b}");
            }
        }
    }
    out.push('"');
}

/// `value` as a Lua expression.
pub fn literal(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('{');
            for item in items {
                literal(item, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Object(map) => {
            out.push('{');
            for (key, item) in map {
                if item.is_null() {
                    continue;
                }
                out.push('[');
                string(key, out);
                out.push_str("]=");
                literal(item, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// What one health check returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub message: String,
}

/// The interpreter's `_VERSION`.
pub fn version() -> String {
    run_lua("io.write(_VERSION)")
}

/// Runs `script` (a file, as Argo CD would load it) once per object, in one
/// interpreter process, each with a fresh global `obj`.
pub fn health(script: &Path, objects: &[(String, Value)]) -> Vec<(String, Health)> {
    let mut program = String::new();
    let _ = writeln!(program, "local check = assert(loadfile({:?}))", script);
    program.push_str(
        "local function clean(s) return (string.gsub(tostring(s), \"[\\t\\n]\", \" \")) end\n",
    );
    for (name, object) in objects {
        program.push_str("obj = ");
        literal(object, &mut program);
        program.push('\n');
        program.push_str("do local hs = check()\n");
        program.push_str("io.write(");
        string(name, &mut program);
        program.push_str(", \"\\t\", clean(hs.status), \"\\t\", clean(hs.message), \"\\n\") end\n");
    }
    let out = run_lua(&program);
    let results: Vec<(String, Health)> = out
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, '\t');
            let name = parts.next().unwrap_or_default().to_owned();
            let status = parts.next().unwrap_or_default().to_owned();
            let message = parts.next().unwrap_or_default().to_owned();
            (name, Health { status, message })
        })
        .collect();
    assert_eq!(
        results.len(),
        objects.len(),
        "one result per object; Lua printed:\n{out}"
    );
    results
}

/// Runs a Lua program from standard input; its standard output.
fn run_lua(program: &str) -> String {
    let mut child = Command::new(INTERPRETER)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {INTERPRETER} (run hack/deps.sh): {e}"));
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(program.as_bytes())
        .expect("program written");
    let out = child.wait_with_output().expect("lua finishes");
    assert!(
        out.status.success(),
        "{INTERPRETER} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
