//! The docker frontend driver through the real binary. No docker engine: a fake
//! `docker` (and `docker-compose`, and a configured compose command) comes
//! first on PATH and records every call and the directory it ran in
//! (tests/support/fake-docker.sh). The releases are real processes; the
//! endpoints are checked through the files c2 writes into
//! `<deploysDir>/frontend-proxy` and the commands it runs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::docker::{in_reload_order, EXEC_TEST, INSPECT};
use crate::common::{self, Env};
use serde_json::{json, Value};

const FAKE_DOCKER: &str = include_str!("../support/fake-docker.sh");
const SIGHUP: &str = "docker kill --signal=SIGHUP frontendproxy";

/// Proxy mode with the docker frontend, the Let's Encrypt directories
/// under the Env's root, and the fake docker commands first on PATH.
fn docker_env(endpoints: &[(&str, &str)]) -> Env {
    let mut env = Env::new();
    env.proxy(endpoints)
        .proxy_set("frontendProxy", json!("docker"));
    let (le, www) = (env.path("le"), env.path("www"));
    env.set("letsencryptPrefixDir", json!(le))
        .set("letsencryptWwwDir", json!(www));

    let bin = env.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["docker", "docker-compose", "my-compose"] {
        let path = bin.join(name);
        std::fs::write(&path, FAKE_DOCKER).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = env.path("docker-calls.log");
    env.env("PATH", &path)
        .env("FAKE_DOCKER_LOG", &log.display().to_string());
    env
}

/// One recorded call of a fake docker command.
#[derive(Debug)]
struct Call {
    cmd: String,
    dir: PathBuf,
}

/// The calls recorded since the last `take_calls`, oldest first.
fn take_calls(env: &Env) -> Vec<Call> {
    let log = env.path("docker-calls.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    text.lines()
        .map(|l| {
            let (cmd, dir) = l.rsplit_once('\t').expect("cmd<TAB>dir");
            Call {
                cmd: cmd.to_string(),
                dir: dir.into(),
            }
        })
        .collect()
}

/// The commands, in the order they ran (see [`in_reload_order`]). Without
/// `FAKE_DOCKER_NGINX` the fake answers the inspect with nothing: not
/// running.
fn commands(calls: &[Call]) -> Vec<&str> {
    let mut cmds: Vec<&str> = calls.iter().map(|c| c.cmd.as_str()).collect();
    in_reload_order(&mut cmds);
    cmds
}

/// `<deploysDir>/frontend-proxy`, as `pwd -P` spells it.
fn proxy_dir(env: &Env) -> PathBuf {
    env.path("deploys/frontend-proxy").canonicalize().unwrap()
}

fn assert_ran_in_proxy_dir(env: &Env, calls: &[Call]) {
    for c in calls {
        assert_eq!(c.dir, proxy_dir(env), "{:?} ran elsewhere", c.cmd);
    }
}

fn port_of(env: &Env, deploy: &str) -> u64 {
    env.state()["deploys"][deploy]["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no deploy {deploy} in {}", env.state()))
}

/// docker-compose.yml, parsed. The compose-file `version` key (the old
/// tool wrote one too; compose ignores it) is checked to be a string and
/// then left out, so the rest can be compared exactly.
fn compose_file(env: &Env) -> Value {
    let text = env.read("deploys/frontend-proxy/docker-compose.yml");
    let mut doc: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("docker-compose.yml is not YAML ({e}):\n{text}"));
    if let Some(version) = doc.as_object_mut().unwrap().remove("version") {
        assert!(version.is_string(), "version: {version}");
    }
    doc
}

/// The compose file the docker driver writes for this Env and image.
fn expected_compose(env: &Env, image: &str) -> Value {
    let le = env.path("le/etc/letsencrypt").display().to_string();
    let www = env.path("www").display().to_string();
    json!({"services": {"nginx": {
        "container_name": "frontendproxy",
        "image": image,
        "network_mode": "host",
        "volumes": [
            "./nginx.conf:/etc/nginx/nginx.conf",
            format!("{le}:{le}"),
            format!("{www}:{www}"),
        ],
        "restart": "always",
    }}})
}

fn ctx_json(env: &Env) -> Value {
    serde_json::from_str(&env.read("deploys/frontend-proxy/nginx.ctx.json")).unwrap()
}

/// The port-80 server of `server_name` in nginx.conf proxies to `port`.
fn assert_routes(env: &Env, server_name: &str, port: u64) {
    let conf = env.read("deploys/frontend-proxy/nginx.conf");
    let block = format!(
        "    listen {};\n    server_name {server_name};\n    location / {{\n      proxy_pass http://localhost:{port};\n",
        env.http_port()
    );
    assert!(
        conf.contains(&block),
        "nginx.conf does not route {server_name} to {port}:\n{conf}"
    );
}

#[test]
fn connect_writes_compose_file_and_nginx_config_then_brings_nginx_up_and_reloads_it() {
    let mut env = docker_env(&[("main", "main.example")]);
    env.proxy_set(
        "endPoints",
        json!({
            "main": {"serverNames": ["main.example"], "etype": "httpOnly"},
            "secure": {"serverNames": ["secure.example"],
                       "etype": {"httpsWithRedirect": "generated"}},
        }),
    );
    // A certificate generated earlier, so the context points at it.
    let live = env.path("le/etc/letsencrypt/live/camus2cert");
    common::write_file(&live.join("fullchain.pem"), "cert");
    common::write_file(&live.join("privkey.pem"), "key");
    env.http_release("blue.zip").publish();

    // A deploy alone routes nothing: the proxy is left alone.
    env.c2(&["start", "blue.zip"]).ok();
    assert_eq!(commands(&take_calls(&env)), Vec::<&str>::new());
    assert!(!env.exists("deploys/frontend-proxy/docker-compose.yml"));

    env.c2(&["connect", "main", "blue"]).ok();
    let calls = take_calls(&env);
    assert_eq!(
        commands(&calls),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_ran_in_proxy_dir(&env, &calls);

    assert_eq!(compose_file(&env), expected_compose(&env, "nginx:1.21.3"));

    let port = port_of(&env, "blue");
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    assert_routes(&env, "main.example", port);
    assert_eq!(
        ctx_json(&env),
        json!({
            "healthCheck": {"incomingPath": "/health-check", "outgoingPath": "/",
                            "outgoingPort": port},
            "endPoints": [
                {"http": {"serverNames": "main.example", "port": port}},
                {"https": {"serverNames": "secure.example",
                           "sslCertPath": live.join("fullchain.pem"),
                           "sslCertKeyPath": live.join("privkey.pem"),
                           "letsencryptWwwDir": env.path("www")}},
            ],
            "httpPort": env.http_port(),
            "httpsPort": env.config()["deployMode"]["proxy"]["httpsPort"],
        })
    );
}

#[test]
fn the_nginx_image_comes_from_the_config() {
    let mut env = docker_env(&[("main", "main.example")]);
    env.set("nginxDockerImage", json!("registry.example:5000/nginx"))
        .set("nginxDockerVersion", json!("1.25.3-alpine"));
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(
        compose_file(&env),
        expected_compose(&env, "registry.example:5000/nginx:1.25.3-alpine")
    );
}

#[test]
fn without_compose_v2_docker_compose_is_used() {
    let mut env = docker_env(&[("main", "main.example")]);
    env.env("FAKE_DOCKER_FAIL", "docker compose version");
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();

    env.c2(&["connect", "main", "blue"]).ok();
    let calls = take_calls(&env);
    assert_eq!(
        commands(&calls),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker-compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_ran_in_proxy_dir(&env, &calls);
    assert_routes(&env, "main.example", port_of(&env, "blue"));
}

#[test]
fn a_configured_compose_command_is_used_without_detection() {
    let mut env = docker_env(&[("main", "main.example")]);
    env.set("composeCommand", json!({"just": "my-compose --flag"}));
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();

    env.c2(&["connect", "main", "blue"]).ok();
    let calls = take_calls(&env);
    assert_eq!(
        commands(&calls),
        [
            INSPECT,
            EXEC_TEST,
            "my-compose --flag up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_ran_in_proxy_dir(&env, &calls);

    env.c2(&["shutdown-frontend-proxy"]).ok();
    let calls = take_calls(&env);
    assert_eq!(commands(&calls), ["my-compose --flag kill"]);
    assert_ran_in_proxy_dir(&env, &calls);
}

#[test]
fn shutdown_kills_the_compose_project_and_needs_a_proxy_to_kill() {
    let env = docker_env(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    let nothing_to_do = |out: &common::Output| {
        assert!(
            out.log_messages()
                .iter()
                .any(|m| m.ends_with("nothing to shut down")),
            "{out}"
        );
    };

    // Never configured: on a fresh machine, then with a deploy but no
    // connection. Nothing runs, not even the compose detection.
    nothing_to_do(&env.c2(&["shutdown-frontend-proxy"]).ok());
    env.c2(&["start", "blue.zip"]).ok();
    nothing_to_do(&env.c2(&["shutdown-frontend-proxy"]).ok());
    assert_eq!(commands(&take_calls(&env)), Vec::<&str>::new());

    env.c2(&["connect", "main", "blue"]).ok();
    take_calls(&env);
    env.c2(&["shutdown-frontend-proxy"]).ok();
    let calls = take_calls(&env);
    assert_eq!(
        commands(&calls),
        ["docker compose version", "docker compose kill"]
    );
    assert_ran_in_proxy_dir(&env, &calls);
    // Shutting the proxy down changes no state.
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
}

#[test]
fn restart_reapplies_the_current_connections_with_the_current_config() {
    let mut env = docker_env(&[("main", "main.example"), ("test", "test.example")]);
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    take_calls(&env);
    let conf = env.read("deploys/frontend-proxy/nginx.conf");
    let ctx = ctx_json(&env);

    // The operator bumps nginx and loses nginx.conf; a restart puts both
    // right, routing what the state says.
    env.set("nginxDockerVersion", json!("1.25.3"));
    std::fs::remove_file(env.path("deploys/frontend-proxy/nginx.conf")).unwrap();
    env.c2(&["restart-frontend-proxy"]).ok();
    let calls = take_calls(&env);
    assert_eq!(
        commands(&calls),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_ran_in_proxy_dir(&env, &calls);
    assert_eq!(compose_file(&env), expected_compose(&env, "nginx:1.25.3"));
    assert_eq!(env.read("deploys/frontend-proxy/nginx.conf"), conf);
    assert_eq!(ctx_json(&env), ctx);
    assert_routes(&env, "main.example", port_of(&env, "blue"));
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
}

#[test]
fn a_failing_compose_up_fails_connect_and_keeps_the_old_connection() {
    let env = docker_env(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    take_calls(&env);

    let out = env
        .c2(&["connect", "main", "green"])
        .env("FAKE_DOCKER_FAIL", "docker compose up")
        .fails_with("docker compose up -d");
    assert!(out.error_line().contains("exit code 1"), "{out}");
    // No reload of a proxy that did not come up.
    assert_eq!(
        commands(&take_calls(&env)),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d"
        ]
    );
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    assert_eq!(
        env.state()["deploys"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["blue", "green"]
    );
    // The files on disk still route what the state says: the container
    // re-reads nginx.conf whenever it restarts.
    assert_routes(&env, "main.example", port_of(&env, "blue"));

    // Once docker works again, a restart routes what the state says.
    env.c2(&["restart-frontend-proxy"]).ok();
    assert_routes(&env, "main.example", port_of(&env, "blue"));
    env.c2(&["connect", "main", "green"]).ok();
    assert_routes(&env, "main.example", port_of(&env, "green"));
    assert_eq!(env.state()["connections"], json!({"main": "green"}));
}

#[test]
fn paths_with_yaml_syntax_are_quoted_in_the_compose_file() {
    let mut env = docker_env(&[("main", "main.example")]);
    // YAML syntax that nginx accepts in a path (whitespace, `#` and `;`
    // are refused at load: they would break nginx.conf).
    let www = env.path("www:&a,*[1]!|>%@");
    env.set("letsencryptWwwDir", json!(www));
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let volumes = compose_file(&env)["services"]["nginx"]["volumes"].clone();
    let mount = format!("{}:{}", www.display(), www.display());
    assert!(
        volumes.as_array().unwrap().contains(&json!(mount)),
        "{volumes}"
    );
}

/// [`docker_env`] whose `frontendproxy` container is a real nginx on the
/// Env's httpPort (see tests/support/fake-docker.sh), with blue and green
/// started and main connected to blue: the container runs.
fn running_container_env() -> Env {
    let mut env = docker_env(&[("main", "main.example")]);
    env.env("FAKE_DOCKER_NGINX", "1");
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(
        commands(&take_calls(&env)),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_eq!(env.get("main.example", "/").body, "blue /");
    env
}

/// The container's nginx master, from the pid file the fake gives it.
fn container_master(env: &Env) -> String {
    env.read("deploys/frontend-proxy/nginx.pid")
        .trim()
        .to_string()
}

#[test]
fn a_running_container_with_an_unchanged_compose_file_is_reloaded_without_compose() {
    let env = running_container_env();
    let master = container_master(&env);
    let compose = env.read("deploys/frontend-proxy/docker-compose.yml");

    for to in ["green", "blue", "green"] {
        env.c2(&["connect", "main", to]).ok();
        let calls = take_calls(&env);
        // No `docker kill` either: c2 signals the master it inspected.
        assert_eq!(commands(&calls), [INSPECT, EXEC_TEST]);
        assert_ran_in_proxy_dir(&env, &calls);
        // connect returns once the same nginx routes to the new deploy.
        assert_eq!(env.get("main.example", "/").body, format!("{to} /"));
        assert_eq!(container_master(&env), master);
    }
    assert_eq!(
        env.read("deploys/frontend-proxy/docker-compose.yml"),
        compose
    );
    env.c2(&["restart-frontend-proxy"]).ok();
    assert_eq!(commands(&take_calls(&env)), [INSPECT, EXEC_TEST]);
    assert_eq!(env.get("main.example", "/").body, "green /");
}

#[test]
fn a_changed_compose_file_or_a_stopped_container_runs_compose() {
    let mut env = running_container_env();
    let master = container_master(&env);

    // A new nginx version changes the compose file: compose re-creates the
    // container, which reads the new config as it starts.
    env.set("nginxDockerVersion", json!("1.25.3"));
    env.c2(&["connect", "main", "green"]).ok();
    assert_eq!(
        commands(&take_calls(&env)),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_eq!(compose_file(&env), expected_compose(&env, "nginx:1.25.3"));
    assert_ne!(container_master(&env), master);
    assert_eq!(env.get("main.example", "/").body, "green /");

    // Stopped behind c2's back: compose starts it again.
    env.c2(&["shutdown-frontend-proxy"]).ok();
    assert_eq!(env.get("main.example", "/").status, 0);
    take_calls(&env);
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(
        commands(&take_calls(&env)),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn a_config_the_running_container_refuses_changes_nothing() {
    let env = running_container_env();
    let conf = env.read("deploys/frontend-proxy/nginx.conf");
    let ctx = ctx_json(&env);

    let out = env
        .c2(&["connect", "main", "green"])
        .env("FAKE_DOCKER_FAIL", EXEC_TEST)
        .fails_with("nginx refused the generated config");
    assert_eq!(out.error_line().lines().count(), 1, "{out}");
    assert_eq!(commands(&take_calls(&env)), [INSPECT, EXEC_TEST]);
    assert_eq!(env.read("deploys/frontend-proxy/nginx.conf"), conf);
    assert_eq!(ctx_json(&env), ctx);
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn a_compose_file_compose_failed_to_apply_is_applied_by_the_next_reload() {
    let mut env = running_container_env();
    let compose = env.read("deploys/frontend-proxy/docker-compose.yml");

    env.set("nginxDockerVersion", json!("1.25.3"));
    env.c2(&["connect", "main", "green"])
        .env("FAKE_DOCKER_FAIL", "docker compose up")
        .fails_with("docker compose up -d");
    take_calls(&env);
    // The old compose file is back, so the change is still seen as one.
    assert_eq!(
        env.read("deploys/frontend-proxy/docker-compose.yml"),
        compose
    );
    assert_eq!(env.get("main.example", "/").body, "blue /");

    env.c2(&["connect", "main", "green"]).ok();
    assert_eq!(
        commands(&take_calls(&env)),
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            SIGHUP,
            INSPECT
        ]
    );
    assert_eq!(compose_file(&env), expected_compose(&env, "nginx:1.25.3"));
    assert_eq!(env.get("main.example", "/").body, "green /");
}
