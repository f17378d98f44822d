//! Real Docker end to end (issue #6): the `docker` frontend driver runs the
//! `frontendproxy` nginx container, releases are docker-compose projects
//! serving pages from a busybox httpd container, and requests go through
//! the container on the configured httpPort. No registry: the images are
//! built locally FROM scratch (tests/it/common/docker.rs). Without a Docker
//! engine these tests print why and pass without running.

use std::time::Duration;

use crate::common::docker::{self, DockerScope, Engine, HTTPD_IMAGE, NGINX_IMAGE};
use crate::common::{self, switching, Env, ReleaseBuilder};
use serde_json::json;

/// A compose release serving `www/index.html` ("<label>") from busybox
/// httpd on `port` (a template expression or a number), with its compose
/// command `compose`, its containers and network labelled for `scope`.
fn compose_release(
    env: &Env,
    name: &str,
    compose: &str,
    port: &str,
    scope: &DockerScope,
) -> ReleaseBuilder {
    let label = name.trim_end_matches(".zip");
    let id = &scope.id;
    env.release(name)
        .template(
            "docker-compose.yml.tpl",
            &format!(
                "version: '3'\n\
                 services:\n\
                 \x20 web:\n\
                 \x20   image: {HTTPD_IMAGE}\n\
                 \x20   ports:\n\
                 \x20     - \"127.0.0.1:{port}:8080\"\n\
                 \x20   volumes:\n\
                 \x20     - ./www:/www:ro\n\
                 \x20   labels:\n\
                 \x20     c2-test: \"{id}\"\n\
                 networks:\n\
                 \x20 default:\n\
                 \x20   labels:\n\
                 \x20     c2-test: \"{id}\"\n"
            ),
        )
        .file("www/index.html", &format!("{label}\n"))
        // Start returns once the page answers, as a real health gate would.
        .template(
            "wait.sh.tpl",
            &format!(
                "for i in $(seq 100); do curl -sf http://127.0.0.1:{port}/ >/dev/null && exit 0; sleep 0.1; done\n\
                 echo 'the release did not answer on port {port}'; exit 1\n"
            ),
        )
        .set("prestartCommand", json!(""))
        .set("startCommand", json!(format!("{compose} up -d && sh wait.sh")))
        .set("stopCommand", json!(format!("{compose} down")))
}

/// Proxy mode with the docker frontend on the locally built nginx image.
fn docker_proxy_env(engine: &Engine, compose: &str) -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example"), ("test", "test.example")]);
    env.proxy_set("frontendProxy", json!("docker"));
    env.set("nginxDockerImage", json!(NGINX_IMAGE));
    env.set("nginxDockerVersion", json!(engine.nginx_version));
    env.set("composeCommand", json!({"just": compose}));
    env.set("letsencryptPrefixDir", json!(env.path("le")));
    env.set("letsencryptWwwDir", json!(env.path("www")));
    env
}

fn record(name: &str, text: &str) {
    eprintln!("{text}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/figures");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(format!("{dir}/{name}"), format!("{text}\n"));
}

fn versions(engine: &Engine) -> String {
    let compose: Vec<String> = engine
        .compose_flavours
        .iter()
        .map(|c| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{c} version --short 2>/dev/null || {c} version"))
                .output()
                .unwrap();
            format!(
                "{c} {}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
            )
        })
        .collect();
    format!(
        "docker engine {}; compose: {}; nginx image {NGINX_IMAGE}:{}",
        engine.server_version,
        compose.join(", "),
        engine.nginx_version
    )
}

#[test]
fn compose_releases_behind_the_frontendproxy_container() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    record("docker-versions.txt", &versions(engine));
    // Every compose flavour this machine has, through composeCommand; and
    // the first through detection (composeCommand unset) too.
    for compose in &engine.compose_flavours {
        let scope = DockerScope::new("proxy");
        let env = docker_proxy_env(engine, compose);
        for name in ["blue.zip", "green.zip"] {
            compose_release(&env, name, compose, "{{ports.http}}", &scope).publish();
        }
        env.c2(&["start", "blue.zip"]).ok();
        env.c2(&["start", "green.zip"]).ok();
        env.c2(&["connect", "main", "blue"]).ok();
        assert_eq!(env.get("main.example", "/").body, "blue\n");
        assert_eq!(env.get("lb", "/health-check").body, "blue\n");
        assert_eq!(env.get("test.example", "/").status, 503);

        env.c2(&["connect", "main", "green"]).ok();
        assert_eq!(env.get("main.example", "/").body, "green\n");
        env.c2(&["disconnect", "main"]).ok();
        assert_eq!(env.get("main.example", "/").status, 503);

        env.c2(&["stop", "blue"]).ok();
        assert!(
            !scope.containers().iter().any(|c| c.starts_with("blue")),
            "blue's container survived its stop: {:?}",
            scope.containers()
        );
        env.c2(&["stop", "green"]).ok();
        assert_eq!(scope.containers(), Vec::<String>::new());

        env.c2(&["shutdown-frontend-proxy"]).ok();
        assert_eq!(
            env.get("main.example", "/").status,
            0,
            "the proxy still answers"
        );
    }

    // Detection picks a working flavour by itself.
    let scope = DockerScope::new("detect");
    let mut env = docker_proxy_env(engine, "unused");
    env.set("composeCommand", json!("nothing"));
    let compose = &engine.compose_flavours[0];
    compose_release(&env, "blue.zip", compose, "{{ports.http}}", &scope).publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue\n");
    env.c2(&["disconnect", "main"]).ok();
    env.c2(&["stop", "blue"]).ok();
}

#[test]
fn the_container_refuses_a_bad_config_and_keeps_serving() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let scope = DockerScope::new("refuse");
    let compose = engine.compose_flavours[0].clone();
    let mut env = docker_proxy_env(engine, &compose);
    compose_release(&env, "blue.zip", &compose, "{{ports.http}}", &scope).publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    let builtin = common::Run::new(&["show-default-nginx-config"]).ok().stdout;
    let tpl = env.path("bad.tpl");
    common::write_file(
        &tpl,
        &builtin.replace("events {", "no_such_directive on;\nevents {"),
    );
    env.proxy_set("nginxConfTemplatePath", json!({"just": tpl}));
    env.c2(&["disconnect", "main"])
        .fails_with("nginx refused the generated config");
    assert_eq!(env.get("main.example", "/").body, "blue\n");
    assert_eq!(env.state()["connections"], json!({"main": "blue"}));
    env.proxy_set("nginxConfTemplatePath", json!("nothing"));
    env.c2(&["disconnect", "main"]).ok();
    env.c2(&["stop", "blue"]).ok();
    env.c2(&["shutdown-frontend-proxy"]).ok();
}

#[test]
fn switching_through_the_container_loses_no_request() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let scope = DockerScope::new("switch");
    let compose = engine.compose_flavours[0].clone();
    let env = docker_proxy_env(engine, &compose);
    for name in ["blue.zip", "green.zip"] {
        compose_release(&env, name, &compose, "{{ports.http}}", &scope).publish();
    }
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["start", "green.zip"]).ok();
    env.c2(&["connect", "main", "blue"]).ok();
    assert_eq!(env.get("main.example", "/").body, "blue\n");

    let figures = switching::run(&env, 20, Duration::from_millis(200));
    figures.record("frontendproxy container", "zero-downtime-docker.txt");
    env.c2(&["shutdown-frontend-proxy"]).ok();
    env.c2(&["disconnect", "main"]).ok();
    env.c2(&["stop", "blue"]).ok();
    env.c2(&["stop", "green"]).ok();
    figures.assert_no_downtime("frontendproxy container");
}

#[test]
fn a_noproxy_compose_release_is_replaced_by_the_next() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let scope = DockerScope::new("noproxy");
    let compose = engine.compose_flavours[0].clone();
    let env = Env::new();
    let port = common::moto::free_port();
    for name in ["app-1.zip", "app-2.zip"] {
        compose_release(&env, name, &compose, &port.to_string(), &scope).publish();
    }
    let page = || common::http::get(port, "localhost", "/");

    env.c2(&["start", "app-1.zip"]).ok();
    assert_eq!(page().body, "app-1\n");
    env.c2(&["start", "app-2.zip"]).ok();
    assert_eq!(page().body, "app-2\n");
    let running = scope.containers();
    assert!(
        running.iter().all(|c| c.starts_with("app-2")) && !running.is_empty(),
        "{running:?}"
    );
    env.c2(&["stop", "app-2"]).ok();
    assert_eq!(scope.containers(), Vec::<String>::new());
    assert_eq!(page().status, 0);
}

#[test]
fn a_slave_with_the_docker_frontend_follows_the_master() {
    let Some(engine) = docker::engine() else {
        return;
    };
    let _turn = engine.exclusive();
    let scope = DockerScope::new("slave");
    let compose = engine.compose_flavours[0].clone();
    let mut master = docker_proxy_env(engine, &compose);
    master.remote(&master.path("shared").to_string_lossy());
    compose_release(&master, "blue.zip", &compose, "{{ports.http}}", &scope).publish();
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();

    let slave = master.slave("docker-slave");
    slave.c2(&["slave-update"]).ok();
    assert_eq!(slave.get("main.example", "/").body, "blue\n");
    let report = master.slave_report("docker-slave").unwrap();
    assert_eq!(report["inSync"], json!(true));

    master.c2(&["disconnect", "main"]).ok();
    master.c2(&["stop", "blue"]).ok();
    slave.c2(&["slave-update"]).ok();
    assert_eq!(scope.containers(), Vec::<String>::new());
    slave.c2(&["shutdown-frontend-proxy"]).ok();
}
