//! Runs the official mustache spec tests (`tests/data/mustache-spec/*.json`,
//! the core modules) through `camus2::template::render_str`.

use std::path::PathBuf;

use camus2::template::render_str;
use serde_json::Value;

/// Runs every case of one spec file; fails listing each failing case.
fn run_spec(file: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mustache-spec")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    let cases = spec["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no 'tests' list", path.display()));

    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let template = case["template"].as_str().expect("template is a string");
        let expected = case["expected"].as_str().expect("expected is a string");
        let partials = case.get("partials").cloned().unwrap_or(Value::Null);
        let mut load = |partial: &str| -> anyhow::Result<Option<String>> {
            Ok(partials[partial].as_str().map(str::to_string))
        };
        match render_str(template, &case["data"], &mut load) {
            Ok(rendered) if rendered.text == expected => {}
            Ok(rendered) => failures.push(format!(
                "{file}: {name}\n    template: {template:?}\n    expected: {expected:?}\n    got:      {:?}",
                rendered.text
            )),
            Err(e) => failures.push(format!(
                "{file}: {name}\n    template: {template:?}\n    error: {e:#}"
            )),
        }
    }
    assert!(
        !cases.is_empty(),
        "{}: no test cases found: the test would pass vacuously",
        path.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{file}: {} cases passed", cases.len());
}

#[test]
fn spec_comments() {
    run_spec("comments.json");
}

#[test]
fn spec_delimiters() {
    run_spec("delimiters.json");
}

#[test]
fn spec_interpolation() {
    run_spec("interpolation.json");
}

#[test]
fn spec_inverted() {
    run_spec("inverted.json");
}

#[test]
fn spec_partials() {
    run_spec("partials.json");
}

#[test]
fn spec_sections() {
    run_spec("sections.json");
}
