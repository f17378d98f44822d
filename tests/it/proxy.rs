//! Proxy mode with local state end to end: real releases serving
//! HTTP on their allocated ports, a real nginx (host driver) in front, and
//! requests through it.

use crate::common::tls::{https_get, self_signed_cert};
use crate::common::{self, Env, PORT_RANGE_WIDTH};
use serde_json::json;

fn two_endpoints() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example"), ("test", "test.example")]);
    env
}

#[test]
fn endpoints_route_to_their_deploys_through_nginx() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    let (lo, _) = env.port_range();

    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    assert_eq!(
        env.state(),
        json!({
            "deploys": {
                "blue": {"label": "blue", "release": "blue.zip", "port": lo},
                "green": {"label": "green", "release": "green.zip", "port": lo + 1}
            },
            "connections": {}
        })
    );
    // The ports context reached the templates.
    assert_eq!(env.read("deploys/green/port"), (lo + 1).to_string());

    env.c2(&["connect", "main", "blue"]).ok();
    env.c2(&["connect", "test", "green"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");
    assert_eq!(env.get("test.example", "/x?y=1").body, "green /x?y=1");
    // The health check goes to the first endpoint's deploy, at outgoingPath.
    assert_eq!(env.get("anything", "/health-check").body, "blue /");
    // Unknown hosts hit the default server.
    assert_eq!(env.get("nobody.example", "/").status, 404);

    env.c2(&["disconnect", "test"]).ok();
    assert_eq!(env.get("test.example", "/").status, 503);
    assert_eq!(env.get("main.example", "/").body, "blue /");
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));

    // Blue/green: switch main to green.
    env.c2(&["connect", "main", "green"]).ok();
    assert_eq!(env.get("main.example", "/").body, "green /");
    assert_eq!(env.get("x", "/health-check").body, "green /");

    // The context nginx was rendered with is kept beside its config.
    let ctx: serde_json::Value =
        serde_json::from_str(&env.read("deploys/frontend-proxy/nginx.ctx.json")).unwrap();
    assert_eq!(
        ctx,
        json!({
            "healthCheck": {"incomingPath": "/health-check", "outgoingPath": "/", "outgoingPort": lo + 1},
            "endPoints": [
                {"http": {"serverNames": "main.example", "port": lo + 1}},
                {"http": {"serverNames": "test.example"}}
            ],
            "httpPort": env.http_port(),
            "httpsPort": env.config()["deployMode"]["proxy"]["httpsPort"]
        })
    );
}

#[test]
fn a_connected_deploy_can_never_be_stopped() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    env.c2(&["stop", "blue"])
        .fails_with("deploy is connected to main");
    assert_eq!(env.get("main.example", "/").body, "blue /");
    assert!(env.exists("deploys/blue"));

    env.c2(&["disconnect", "main"]).ok();
    env.c2(&["stop", "blue"]).ok();
    assert!(!env.exists("deploys/blue"));
    assert_eq!(env.state()["deploys"], json!({}));
    // Its server is gone too: the stop command ran.
    assert_eq!(
        common::http::get(env.port_range().0 as u16, "x", "/").status,
        0
    );
}

#[test]
fn status_shows_endpoints_and_deploys() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "blue.zip", "canary"]).ok();
    env.c2(&["connect", "main", "canary"]).ok();
    let (lo, hi) = env.port_range();
    let width = hi - lo;
    let port = env.http_port();
    assert_eq!(
        env.c2(&["status"]).ok().stdout,
        format!(
            "---------------------MASTER-------------------------------------------\n\
             Endpoints:\n\
             \x20 main: (main.example:{port}) -> canary\n\
             \x20 test: (test.example:{port}) -> (not connected)\n\
             \n\
             Deploys:\n\
             \x20 blue (blue.zip): (localhost:{lo})\n\
             \x20 canary (blue.zip): (localhost:{})\n\
             \n\
             Ports: 2 of {width} in use ({lo}-{})\n",
            lo + 1,
            hi - 1,
        )
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.c2(&["status", "--json-output"]).ok().stdout).unwrap();
    assert_eq!(
        json,
        json!({"master": env.state(), "ports": {"used": 2, "total": width}})
    );
}

#[test]
fn starting_the_same_release_again_changes_nothing() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    let before = env.state();
    let out = env.c2(&["start", "blue.zip"]).ok();
    assert!(!out.stdout.contains("Creating deploy"), "{out}");
    assert_eq!(env.state(), before);
}

/// Runs a command that must fail with `needle`, and checks the state file
/// and what nginx serves did not change.
fn assert_refused(env: &Env, args: &[&str], needle: &str) {
    let state = env.state();
    let served = env.get("main.example", "/");
    env.c2(args).fails_with(needle);
    assert_eq!(env.state(), state, "state changed by a refused `{args:?}`");
    assert_eq!(env.get("main.example", "/"), served);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();

    assert_refused(
        &env,
        &["connect", "nope", "blue"],
        "no endpoint called nope",
    );
    assert_refused(&env, &["disconnect", "nope"], "no endpoint called nope");
    assert_refused(
        &env,
        &["connect", "main", "ghost"],
        "no deploy called ghost",
    );
    assert_refused(&env, &["stop", "ghost"], "no deploy called ghost");
    let store = env.path("store");
    assert_refused(
        &env,
        &["start", "missing.zip"],
        &format!(
            "Release missing.zip does not exist in release store at {}",
            store.display()
        ),
    );
    // The label clash (old tool: silently destroyed and re-created it).
    assert_refused(
        &env,
        &["start", "green.zip", "blue"],
        "deploy blue already exists with release blue.zip",
    );

    // Port range exhausted.
    let (lo, _) = env.port_range();
    env.proxy_set("dynamicPortRange", json!({"v1": lo, "v2": lo + 1}));
    assert_refused(
        &env,
        &["start", "green.zip"],
        &format!(
            "c2: error: no more ports available in {lo}-{lo} (dynamicPortRange): held by blue ({lo}); stop a deploy or widen the range"
        ),
    );
    assert!(!env.exists("deploys/green"));
    let _ = PORT_RANGE_WIDTH;
}

#[test]
fn a_custom_template_that_does_not_parse_is_refused() {
    let mut env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let tpl = env.path("nginx.conf.tpl");
    common::write_file(&tpl, "events {}\nhttp { {{#endPoints}} }\n");
    env.proxy_set("nginxConfTemplatePath", json!({"just": tpl}));
    assert_refused(&env, &["disconnect", "main"], "nginx.conf.tpl");
    assert_refused(
        &env,
        &["disconnect", "main"],
        "unclosed section 'endPoints'",
    );
}

#[test]
fn a_config_nginx_refuses_keeps_the_old_one_serving() {
    let mut env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let conf_before = env.read("deploys/frontend-proxy/nginx.conf");

    // A custom template that renders, but with a directive nginx rejects.
    let builtin = common::Run::new(&["show-default-nginx-config"]).ok().stdout;
    let tpl = env.path("custom.tpl");
    common::write_file(
        &tpl,
        &builtin.replace("events {", "no_such_directive on;\nevents {"),
    );
    env.proxy_set("nginxConfTemplatePath", json!({"just": tpl}));
    let out = env
        .c2(&["disconnect", "main"])
        .fails_with("nginx refused the generated config");
    assert!(out.error_line().contains("no_such_directive"), "{out}");
    assert_eq!(env.read("deploys/frontend-proxy/nginx.conf"), conf_before);
    assert_eq!(env.get("main.example", "/").body, "blue /");
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
}

#[test]
fn a_custom_template_is_used() {
    let mut env = two_endpoints();
    env.http_release("blue.zip").publish();
    let builtin = common::Run::new(&["show-default-nginx-config"]).ok().stdout;
    let tpl = env.path("custom.tpl");
    common::write_file(&tpl, &builtin.replace("return 503;", "return 418;"));
    env.proxy_set("nginxConfTemplatePath", json!({"just": tpl}));
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("test.example", "/").status, 418);
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn a_failed_start_leaves_no_half_registered_deploy() {
    let env = two_endpoints();
    // The start command launches the server, then fails.
    env.http_release("broken.zip")
        .set(
            "startCommand",
            json!("python3 serve.py $(cat port) broken && exit 4"),
        )
        .publish();
    env.c2(&["start", "broken.zip"])
        .fails_with("startCommand of broken.zip failed with exit code 4");
    assert_eq!(env.state(), json!(null), "no state change was recorded");
    assert!(!env.exists("deploys/broken"), "directory left behind");
    // Its stop command ran: nothing listens on the port it was given.
    let (lo, _) = env.port_range();
    assert_eq!(common::http::get(lo as u16, "x", "/").status, 0);

    // A prestart failure: nothing started, nothing left.
    env.http_release("nopull.zip")
        .set("prestartCommand", json!("exit 9"))
        .publish();
    env.c2(&["start", "nopull.zip"]).fails_with("exit code 9");
    assert!(!env.exists("deploys/nopull"));
}

#[test]
fn restart_and_shutdown_of_the_frontend_proxy() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    env.c2(&["shutdown-frontend-proxy"]).ok();
    assert_eq!(
        env.get("main.example", "/").status,
        0,
        "nginx still answers"
    );
    env.c2(&["restart-frontend-proxy"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");
    // Restarting a running proxy reloads it.
    env.c2(&["restart-frontend-proxy"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");
    env.c2(&["shutdown-frontend-proxy"]).ok();
    env.c2(&["shutdown-frontend-proxy"]).ok();
}

#[test]
fn concurrent_commands_are_serialised() {
    let env = two_endpoints();
    for n in 0..6 {
        env.http_release(&format!("r{n}.zip")).publish();
    }
    let runs: Vec<_> = (0..6)
        .map(|n| env.c2(&["start", &format!("r{n}.zip")]))
        .map(|run| std::thread::spawn(move || run.output()))
        .collect();
    for r in runs {
        let out = r.join().unwrap();
        assert_eq!(out.code, Some(0), "{out}");
    }
    let state = env.state();
    let ports: std::collections::BTreeSet<u64> = state["deploys"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 6, "lost or duplicated a deploy: {state}");
}

#[test]
fn https_endpoints_redirect_serve_acme_challenges_and_terminate_tls() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    let (cert, key) = self_signed_cert(&env, "secure.example");
    let mut eps = env.config()["deployMode"]["proxy"]["endPoints"].clone();
    eps["secure"] = json!({"serverNames": ["secure.example"], "etype": {"httpsWithRedirect": {"explicit": {"sslCertificate": cert, "sslCertificateKey": key}}}});
    env.proxy_set("endPoints", eps);
    let www = env.path("www");
    env.set("letsencryptWwwDir", json!(www));
    common::write_file(
        &www.join(".well-known/acme-challenge/tok123"),
        "proof-of-control",
    );
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();

    // Not connected yet: the TLS server answers 503.
    env.c2(&["restart-frontend-proxy"]).ok();
    assert_eq!(https_get(&env, "secure.example", "/").0, "503");

    env.c2(&["connect", "secure", "blue"]).ok();
    assert_eq!(
        https_get(&env, "secure.example", "/a?b=c"),
        ("200".to_string(), "blue /a?b=c".to_string())
    );
    // Plain http: ACME challenges from the webroot, everything else redirected.
    let challenge = env.get("secure.example", "/.well-known/acme-challenge/tok123");
    assert_eq!(
        (challenge.status, challenge.body.as_str()),
        (200, "proof-of-control")
    );
    assert_eq!(env.get("secure.example", "/page").status, 301);
    // main is not connected: 503, and its name is not served over TLS.
    assert_eq!(env.get("main.example", "/").status, 503);
}

#[test]
fn the_health_check_follows_its_configured_endpoint() {
    let mut env = two_endpoints();
    env.set(
        "healthCheck",
        json!({"just": {"incomingPath": "/hc", "outgoingPath": "/status", "endpoint": {"just": "test"}}}),
    );
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    // Its endpoint is not connected: no health-check location at all.
    assert_eq!(env.get("lb", "/hc").status, 404);
    env.c2(&["connect", "test", "green"]).ok();
    assert_eq!(env.get("lb", "/hc").body, "green /status");
}

#[test]
fn a_config_injecting_nginx_directives_is_refused_and_nginx_keeps_serving() {
    let mut env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let conf_before = env.read("deploys/frontend-proxy/nginx.conf");
    let etc_before = env.get("inj.localhost", "/etcfiles/hostname");
    assert_eq!(etc_before.status, 404);

    let valid = env.config()["deployMode"]["proxy"]["endPoints"].clone();
    let mut eps = valid.clone();
    eps["test"]["serverNames"] =
        json!(["inj.localhost; location /etcfiles/ { alias /etc/; } server_name x"]);
    env.proxy_set("endPoints", eps);
    assert_refused(
        &env,
        &["connect", "test", "blue"],
        "camus2.json: deployMode.proxy.endPoints.test.serverNames.0: invalid server name",
    );
    assert_refused(
        &env,
        &["restart-frontend-proxy"],
        "deployMode.proxy.endPoints.test.serverNames.0",
    );

    env.proxy_set("endPoints", valid);
    env.set(
        "healthCheck",
        json!({"just": {"incomingPath": "/hc { return 200 X; } location /zz", "outgoingPath": "/"}}),
    );
    assert_refused(
        &env,
        &["disconnect", "main"],
        "camus2.json: healthCheck.just.incomingPath: invalid URL path",
    );

    assert_eq!(env.read("deploys/frontend-proxy/nginx.conf"), conf_before);
    assert_eq!(env.get("inj.localhost", "/etcfiles/hostname"), etc_before);
    assert_eq!(env.get("lb", "/hc").status, 404);
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn wildcard_server_names_route_through_nginx() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.proxy_set(
        "endPoints",
        json!({"main": {"serverNames": ["*.wild.example", ".dot.example", "www.trail.*"], "etype": "httpOnly"}}),
    );
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    for host in [
        "a.wild.example",
        "dot.example",
        "x.dot.example",
        "www.trail.org",
    ] {
        let r = env.get(host, "/p");
        assert_eq!((r.status, r.body.as_str()), (200, "blue /p"), "{host}");
    }
    for host in ["wild.example", "trail.org", "main.example"] {
        assert_eq!(env.get(host, "/p").status, 404, "{host}");
    }
}

#[test]
fn a_state_file_that_is_not_an_object_is_refused_naming_it() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    let (lo, _) = env.port_range();
    // serde reads a struct from its sequence form too: `[]` was an empty
    // state, and green took blue's port.
    let state = env.path("deploys/frontend-proxy/state.json");
    std::fs::write(&state, "[]").unwrap();
    env.c2(&["start", "green.zip"]).fails_with(&format!(
        "{}: invalid state: expected a JSON object, found an array",
        state.display()
    ));
    assert!(!env.exists("deploys/green"), "a deploy was created");
    assert_eq!(common::http::get(lo as u16, "x", "/").body, "blue /");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "[]");
}

/// Whether process `pid` is gone (a zombie counts: it holds nothing).
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'))
    })
}

/// The pid in a deploy's `server.pid`.
fn server_pid(env: &Env, label: &str) -> u32 {
    env.read(&format!("deploys/{label}/server.pid"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_failing_stop_command_is_reported_and_the_deploy_goes_anyway() {
    let env = two_endpoints();
    env.http_release("broken.zip")
        .set("stopCommand", json!("exit 3"))
        .publish();
    env.http_release("green.zip").publish();
    env.c2(&["start", "broken.zip"]).ok();
    let (lo, _) = env.port_range();
    assert_eq!(common::http::get(lo as u16, "x", "/").body, "broken /");
    let pid = server_pid(&env, "broken");

    let out = env
        .c2(&["stop", "broken"])
        .fails_with(
            "deploy broken: stopCommand failed with exit code 3: exit 3; killed the processes left running and carried on",
        );
    assert!(
        out.stderr.contains(
            "deploy broken: stopCommand failed with exit code 3: exit 3: killing the processes it started"
        ),
        "{out}"
    );
    assert_eq!(env.state()["deploys"], json!({}));
    assert!(!env.exists("deploys/broken"), "directory left behind");
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the broken deploy's server to die",
        || dead(pid),
    );
    assert_eq!(common::http::get(lo as u16, "x", "/").status, 0);

    // Nothing is wedged: the next deploy gets the freed port.
    env.c2(&["start", "green.zip"]).ok();
    assert_eq!(env.state()["deploys"]["green"]["port"], json!(lo));
    assert_eq!(common::http::get(lo as u16, "x", "/").body, "green /");
}

#[test]
fn a_directory_c2_did_not_create_is_left_alone_and_the_start_fails() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    common::write_file(&env.path("deploys/blue/notes.txt"), "mine\n");
    let dir = env.path("deploys/blue");
    let out = env.c2(&["start", "blue.zip"]).fails_with(&format!(
        "cannot use {}: it was not created by c2 (it has no .c2-deploy marker); move it away",
        dir.display()
    ));
    assert!(
        out.stderr
            .contains(&format!("{} was not created by c2", dir.display())),
        "{out}"
    );
    assert_eq!(env.read("deploys/blue/notes.txt"), "mine\n");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    assert_eq!(env.state(), json!(null), "no state change was recorded");
}

#[test]
fn a_leftover_c2_created_is_still_stopped_and_replaced() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    let pid = server_pid(&env, "blue");
    // As a run killed before recording the deploy leaves it.
    std::fs::remove_file(env.path("deploys/frontend-proxy/state.json")).unwrap();
    let out = env.c2(&["start", "blue.zip"]).ok();
    assert!(
        out.stderr.contains("was left by an interrupted run"),
        "{out}"
    );
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the leftover's server to die",
        || dead(pid),
    );
    let (lo, _) = env.port_range();
    assert_eq!(common::http::get(lo as u16, "x", "/").body, "blue /");
    assert_ne!(server_pid(&env, "blue"), pid);
}

#[test]
fn switching_from_noproxy_to_proxy_leaves_the_noproxy_releases_alone() {
    let mut env = Env::new();
    env.release("app-1.zip").publish();
    env.release("app-2.zip").publish();
    env.c2(&["start", "app-1.zip"]).ok();
    env.c2(&["start", "app-2.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("app-2"));
    let events = env.events();

    env.proxy(&[("main", "main.example")]);
    for (label, why) in [
        (
            "app-2",
            "is the live noproxy release (`current` points to it)",
        ),
        ("app-1", "was created by c2 in another mode (c2 noproxy)"),
    ] {
        env.c2(&["start", &format!("{label}.zip")])
            .fails_with(&format!(
                "cannot use {}: it {why}; move it away",
                env.path(&format!("deploys/{label}")).display()
            ));
        assert!(env.exists(&format!("deploys/{label}/release.json")));
    }
    assert_eq!(env.current().as_deref(), Some("app-2"));
    assert_eq!(env.events(), events, "a command of a noproxy release ran");
    assert_eq!(env.state(), json!(null), "no state change was recorded");
}

#[test]
fn a_deploy_listed_in_the_state_is_stopped_without_a_marker() {
    // As an older c2, which wrote no marker, left it.
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    std::fs::remove_file(env.path("deploys/blue/.c2-deploy")).unwrap();
    env.c2(&["stop", "blue"]).ok();
    assert!(!env.exists("deploys/blue"));
    assert_eq!(env.state()["deploys"], json!({}));
    let (lo, _) = env.port_range();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "blue's port to close",
        || common::http::get(lo as u16, "x", "/").status == 0,
    );
}

/// The pid in the Env's nginx pid file (a killed master leaves it behind).
pub(crate) fn nginx_master_pid(env: &Env) -> u32 {
    env.read("deploys/frontend-proxy/nginx.pid")
        .trim()
        .parse()
        .unwrap()
}

/// `(ppid, session)` of a live process (not a zombie).
fn tree_place(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields[0] == "Z" {
        return None;
    }
    Some((fields[1].parse().ok()?, fields[3].parse().ok()?))
}

/// The live processes of nginx session `master` (nginx's master leads a
/// session of its own; its workers stay in it, even orphaned).
pub(crate) fn nginx_session(master: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| tree_place(pid).is_some_and(|(_, session)| session == master))
        .collect()
}

/// Sends `signal` to `pid`.
pub(crate) fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// `kill -9` of the Env's nginx master: its workers live on, orphaned,
/// holding the port. Returns the dead master's pid and its orphans.
pub(crate) fn kill_nginx_master(env: &Env) -> (u32, Vec<u32>) {
    let master = nginx_master_pid(env);
    signal(master, nix::sys::signal::Signal::SIGKILL);
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the nginx master to die",
        || tree_place(master).is_none(),
    );
    let orphans = nginx_session(master);
    assert!(!orphans.is_empty(), "no orphaned workers of {master}");
    for &w in &orphans {
        assert_ne!(tree_place(w).unwrap().0, master, "{w} still has its master");
    }
    (master, orphans)
}

#[test]
fn nginx_quit_behind_c2s_back_is_brought_back_by_connect() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    // `nginx -s quit` sends the master SIGQUIT.
    signal(nginx_master_pid(&env), nix::sys::signal::Signal::SIGQUIT);
    common::wait_until(std::time::Duration::from_secs(10), "nginx to quit", || {
        env.get("main.example", "/").status == 0
    });

    // The same connection again: no route changes, but the proxy is back.
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue /");
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    // Once it serves, a connect that changes nothing leaves it as it is.
    let master = nginx_master_pid(&env);
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(nginx_master_pid(&env), master);
    assert_eq!(env.get("main.example", "/").body, "blue /");
}

#[test]
fn orphaned_workers_of_a_killed_nginx_are_cleared_but_never_someone_elses() {
    let env = two_endpoints();
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    // Someone else's nginx on another port (here another c2 machine's),
    // its master killed too: orphaned `nginx: worker process`es with the
    // same title and parent as ours, still serving.
    let other = two_endpoints();
    other.http_release("green.zip").publish();
    other.c2(&["start", "green.zip"]).ok();
    other.c2(&["connect", "main", "green"]).ok();
    let (_, foreign) = kill_nginx_master(&other);
    // Orphans are stopped at the end whatever happens: no Env knows them.
    struct Stop(Vec<u32>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.iter().for_each(|&pid| common::terminate(pid));
        }
    }
    let mut leftovers = Stop(foreign.clone());

    for command in [
        &["restart-frontend-proxy"][..],
        &["connect", "main", "blue"],
    ] {
        let (dead, orphans) = kill_nginx_master(&env);
        leftovers.0.extend(&orphans);
        // The orphans still serve, and hold the port.
        assert_eq!(env.get("main.example", "/").body, "blue /");

        env.c2(command).ok();
        assert_eq!(
            nginx_session(dead),
            Vec::<u32>::new(),
            "orphans left: {orphans:?}"
        );
        assert_ne!(nginx_master_pid(&env), dead);
        assert_eq!(env.get("main.example", "/").body, "blue /");
        // Not ours: untouched, and still serving.
        for &pid in &foreign {
            assert!(tree_place(pid).is_some(), "{pid} (not ours) was stopped");
        }
        assert_eq!(other.get("main.example", "/").body, "green /");
    }
}
