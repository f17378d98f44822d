//! Shell completion (SPEC §4), driven through a real bash: release names,
//! deploy labels and endpoint labels come from the live config and state.

use crate::common::{self, Env};

/// What bash offers after `words` (the last one being typed).
fn complete(env: &Env, words: &[&str]) -> Vec<String> {
    let config = env.write_config();
    let c2 = env!("CARGO_BIN_EXE_c2");
    let mut all = vec![
        c2.to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    all.extend(words.iter().map(|w| w.to_string()));
    let quoted: Vec<String> = all.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <('{c2}' completions bash); COMP_WORDS=({}); COMP_CWORD={}; _c2; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        all.len() - 1
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn bash_completes_commands_releases_deploys_and_endpoints() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example"), ("test", "test.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "blue.zip", "canary"]).ok();

    assert_eq!(complete(&env, &["sta"]), ["start", "status"]);
    assert_eq!(complete(&env, &["start", ""]), ["blue.zip", "green.zip"]);
    assert_eq!(complete(&env, &["start", "g"]), ["green.zip"]);
    assert_eq!(complete(&env, &["stop", ""]), ["blue", "canary"]);
    assert_eq!(complete(&env, &["connect", ""]), ["main", "test"]);
    assert_eq!(complete(&env, &["connect", "main", "c"]), ["canary"]);
    assert_eq!(complete(&env, &["disconnect", "t"]), ["test"]);
    // The hidden helper is not offered as a command.
    assert!(!complete(&env, &["__"]).iter().any(|c| c.starts_with("__")));
}

#[test]
fn completion_never_prints_errors_into_the_shell() {
    let out = common::Run::new(&["--config", "/nonexistent.json", "__complete", "releases"]).ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
}
