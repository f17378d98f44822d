//! Shell completion, driven through a real bash, zsh and fish that
//! source `c2 completions <shell>`: command names, and release names, deploy
//! labels and endpoint labels from the live config and state. Also `c2 help`,
//! which like completion is generated from the clap definitions.

use std::path::Path;

use crate::common::{Env, Run};

#[derive(Clone, Copy, Debug)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// A script that sources the registration from `$C2 completions <shell>`
    /// and runs the registered completion for the command line given as its
    /// arguments (the last one being the word under the cursor), printing
    /// one candidate per line.
    fn script(self) -> &'static str {
        match self {
            // The function `complete -F` registered, called as bash calls it:
            // COMP_WORDS/COMP_CWORD set, then (command, word, previous word).
            Shell::Bash => {
                r#"source <("$C2" completions bash)
                fn=$(complete -p c2 | sed -E 's/.* -F ([^ ]+) .*/\1/')
                COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
                "$fn" c2 "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\n' "${COMPREPLY[@]}""#
            }
            // zsh's completion system runs only inside an interactive line
            // editor's widget, so its two entry points the script uses are
            // stood in for: `compdef` records the function registered for c2,
            // `_describe` prints the `value:description` array it is handed.
            // The script's own function then runs for real on `words` and
            // `CURRENT` (1-based index of the word under the cursor), as the
            // completion system sets them, and calls c2 as it would on TAB.
            Shell::Zsh => {
                r#"compdef() { c2_function=$1 }
                _describe() { print -rl -- "${(@P)3}" }
                source <("$C2" completions zsh)
                words=("$@"); CURRENT=$#
                $c2_function"#
            }
            // `complete -C LINE` asks fish for the completions of LINE, exactly
            // what TAB at its end would offer (`value<TAB>description`).
            Shell::Fish => {
                r#"source ($C2 completions fish | psub)
                complete -C (string join -- ' ' (string escape -- $argv[1..-2]) $argv[-1])"#
            }
        }
    }

    /// Runs the completion of `c2 --config <config> words…`; the candidates
    /// (values only), sorted, and what the shell printed on stderr.
    fn run(self, config: &Path, words: &[&str]) -> (Vec<String>, String) {
        self.run_with(config, words, &[])
    }

    /// [`Shell::run`] with extra environment variables.
    fn run_with(
        self,
        config: &Path,
        words: &[&str],
        vars: &[(&str, &str)],
    ) -> (Vec<String>, String) {
        let home = tempfile::tempdir().expect("tempdir");
        let mut line = vec!["c2", "--config", config.to_str().expect("utf-8 path")];
        line.extend(words);
        let mut shell = std::process::Command::new(self.name());
        match self {
            Shell::Bash => shell.arg("-c").arg(self.script()).arg("bash"),
            Shell::Zsh => shell.arg("-f").arg("-c").arg(self.script()).arg("zsh"),
            Shell::Fish => shell.arg("--no-config").arg("-c").arg(self.script()),
        };
        // Run as `common::Run` runs c2: none of the developer's own settings.
        let c2 = Run::new(&[]).cmd;
        for (var, value) in c2.get_envs() {
            match value {
                Some(value) => shell.env(var, value),
                None => shell.env_remove(var),
            };
        }
        let out = shell
            .args(&line)
            .env("C2", env!("CARGO_BIN_EXE_c2"))
            // fish keeps history and variables under these.
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.name()));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{}: {stderr}", self.name());
        let mut candidates: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let value = match self {
                    Shell::Bash => l,
                    Shell::Zsh => l.split(':').next().unwrap_or(l),
                    Shell::Fish => l.split('\t').next().unwrap_or(l),
                };
                value.to_string()
            })
            .collect();
        candidates.sort();
        (candidates, stderr)
    }
}

/// What `shell` offers after `words` (the last one being typed).
fn complete(shell: Shell, env: &Env, words: &[&str]) -> Vec<String> {
    let (candidates, stderr) = shell.run(&env.write_config(), words);
    assert_eq!(stderr, "", "{shell:?} printed errors");
    candidates
}

#[test]
fn every_shell_completes_commands_releases_deploys_and_endpoints() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example"), ("test", "test.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "blue.zip", "canary"]).ok();

    for shell in SHELLS {
        assert_eq!(complete(shell, &env, &["sta"]), ["start", "status"]);
        assert_eq!(
            complete(shell, &env, &["start", ""]),
            ["blue.zip", "green.zip"]
        );
        assert_eq!(complete(shell, &env, &["start", "g"]), ["green.zip"]);
        assert_eq!(complete(shell, &env, &["unpack", "b"]), ["blue.zip"]);
        assert_eq!(complete(shell, &env, &["stop", ""]), ["blue", "canary"]);
        assert_eq!(complete(shell, &env, &["connect", ""]), ["main", "test"]);
        assert_eq!(complete(shell, &env, &["connect", "main", "c"]), ["canary"]);
        assert_eq!(complete(shell, &env, &["disconnect", "t"]), ["test"]);
        assert_eq!(complete(shell, &env, &["rollback", ""]), ["main", "test"]);
        // Options only once a `-` is typed.
        assert_eq!(complete(shell, &env, &["status", "--j"]), ["--json-output"]);
        // No hidden command is offered, even to one who types its prefix.
        let hidden = complete(shell, &env, &["__"]);
        assert!(!hidden.iter().any(|c| c.starts_with("__")), "{hidden:?}");
    }
}

#[test]
fn completion_never_prints_errors_into_the_shell() {
    let missing = Path::new("/nonexistent/camus2.json");
    for shell in SHELLS {
        let (candidates, stderr) = shell.run(missing, &["start", "b"]);
        assert_eq!(candidates, Vec::<String>::new(), "{shell:?}");
        assert_eq!(stderr, "", "{shell:?}");
        // No names to offer: only the options are.
        let (candidates, stderr) = shell.run(missing, &["stop", ""]);
        assert!(
            candidates.iter().all(|c| c.starts_with('-')),
            "{candidates:?}"
        );
        assert_eq!(stderr, "", "{shell:?}");
    }
}

#[test]
fn a_release_store_that_does_not_answer_never_holds_the_shell_for_long() {
    // An S3 endpoint that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let mut env = Env::new();
    env.set("releases", serde_json::json!({"s3": "s3://releases/"}));
    let vars = [
        ("S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let started = std::time::Instant::now();
    let (candidates, stderr) = Shell::Bash.run_with(&env.write_config(), &["start", "b"], &vars);
    let took = started.elapsed();
    assert_eq!(candidates, Vec::<String>::new());
    assert_eq!(stderr, "");
    // c2 gives up on the names after 3 s; the rest is process start-up.
    assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
}

#[test]
fn completions_prints_the_script_the_engine_registers() {
    for shell in SHELLS {
        let printed = Run::new(&["completions", shell.name()]).ok();
        assert_eq!(printed.stderr, "");
        let registered = Run::new(&[]).env("C2_COMPLETE", shell.name()).ok();
        assert_eq!(printed.stdout, registered.stdout, "{shell:?}");
        assert!(printed.stdout.contains(env!("CARGO_BIN_EXE_c2")));
    }
    let out = Run::new(&["completions", "tcsh"]).output();
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn help_prints_every_command_and_help_command_its_long_help() {
    let all = Run::new(&["help"]).ok();
    assert_eq!(all.stderr, "");
    assert!(all.stdout.starts_with("c2 [OPTIONS] <COMMAND>\n"), "{all}");
    assert!(
        all.stdout.contains("\nc2 slave-update [--repeat <N>]\n"),
        "{all}"
    );

    let start = Run::new(&["help", "start"]).ok();
    assert_eq!(start.stderr, "");
    assert!(
        start
            .stdout
            .starts_with("Deploy a release.\n\nNoproxy mode: replaces"),
        "{start}"
    );
    assert!(start
        .stdout
        .contains("Usage: c2 start [OPTIONS] <RELEASE> [DEPLOY]"));
    assert_eq!(start.stdout, Run::new(&["start", "--help"]).ok().stdout);

    let out = Run::new(&["help", "deploy-everything"]).output();
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.error_line(),
        "c2: error: no command called deploy-everything: `c2 help` lists them"
    );
}
