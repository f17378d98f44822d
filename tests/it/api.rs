//! `c2 serve`: the deploy commands and the fleet's view over HTTP, as a CI
//! system, a bot or a browser uses them. Real c2 serve processes, curl as
//! the client, nginx serving the deploys, real slaves following a master.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::api::{Api, Reply};
use crate::common::{wait_until, Env};

/// Proxy mode with endpoint `main`, releases blue.zip and green.zip
/// published, and the API serving it.
fn captain() -> (Env, Api) {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.http_release("blue.zip").publish();
    env.http_release("green.zip").publish();
    let api = Api::serve(&mut env);
    (env, api)
}

/// `c2 status --json-output` as the command line prints it.
fn cli_status(env: &Env) -> Value {
    serde_json::from_str(&env.c2(&["status", "--json-output"]).ok().stdout).unwrap()
}

#[test]
fn a_ci_system_deploys_blue_green_through_the_api_and_nginx_serves_each_switch() {
    let (env, api) = captain();

    let blue = api.call("POST", "/v1/deploys", Some(json!({"release": "blue.zip"})));
    assert_eq!(blue.status, 201, "{blue:?}");
    let port = blue.json()["port"].as_u64().unwrap();
    assert_eq!(
        blue.json(),
        json!({"label": "blue", "release": "blue.zip", "port": port, "endpoints": [], "health": null})
    );
    let green = api.call(
        "POST",
        "/v1/deploys",
        Some(json!({"release": "green.zip", "label": "green"})),
    );
    assert_eq!(green.status, 201, "{green:?}");

    let connected = api.call("PUT", "/v1/endpoints/main", Some(json!({"deploy": "blue"})));
    assert_eq!(connected.status, 200, "{connected:?}");
    assert_eq!(
        connected.json(),
        json!({"name": "main", "serverNames": ["main.example"], "deploy": "blue", "previous": null})
    );
    assert_eq!(env.get("main.example", "/").body, "blue /");

    // A dry run says what it would do, and does nothing.
    let before = env.state();
    let dry = api.call(
        "PUT",
        "/v1/endpoints/main?dryRun=true",
        Some(json!({"deploy": "green"})),
    );
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(
        dry.json(),
        json!({"actions": [
            env.c2(&["connect", "main", "green", "--dry-run"]).ok().stdout.trim_end()
        ]})
    );
    assert_eq!(env.state(), before);

    let switched = api.call(
        "PUT",
        "/v1/endpoints/main",
        Some(json!({"deploy": "green"})),
    );
    assert_eq!(switched.json()["previous"], "blue", "{switched:?}");
    assert_eq!(env.get("main.example", "/").body, "green /");

    let back = api.call("POST", "/v1/endpoints/main/rollback", None);
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(back.json()["deploy"], "blue");
    assert_eq!(env.get("main.example", "/").body, "blue /");

    // The rules are the command line's, word for word.
    let refused = api.call("DELETE", "/v1/deploys/blue", None);
    assert_eq!(refused.status, 409, "{refused:?}");
    let cli = env.c2(&["stop", "blue"]).fails_with("connected");
    assert_eq!(format!("c2: error: {}", refused.error()), cli.error_line());
    assert_eq!(api.call("DELETE", "/v1/deploys/green", None).status, 204);
    assert_eq!(api.call("DELETE", "/v1/deploys/green", None).status, 404);

    // What the API shows is what the command line shows.
    assert_eq!(api.get("/v1/status").json(), cli_status(&env));
    let deploys = api.get("/v1/deploys").json();
    assert_eq!(
        deploys,
        json!([{"label": "blue", "release": "blue.zip", "port": port, "endpoints": ["main"], "health": null}])
    );
    let endpoints = api.get("/v1/endpoints").json();
    assert_eq!(endpoints[0]["deploy"], "blue");
    let releases = api.get("/v1/releases").json();
    let names: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(releases[0]["lastModified"].as_str().unwrap().ends_with('Z'));

    // Every change is in the history as the token's.
    let history = api.get("/v1/history?limit=3").json();
    let lines: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let words: Vec<&str> = e["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect();
            (e["user"].as_str().unwrap().to_string(), words.join(" "))
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("ci@api".to_string(), "stop green".to_string()),
            ("ci@api".to_string(), "rollback main".to_string()),
            ("ci@api".to_string(), "connect main green".to_string()),
        ]
    );
    let text = env.c2(&["history", "--limit", "1"]).ok().stdout;
    assert!(text.contains(" ci@api@"), "{text}");
}

#[test]
fn the_deploy_lock_over_the_api_refuses_changes_naming_its_holder() {
    let (env, api) = captain();
    let locked = api.call(
        "PUT",
        "/v1/lock",
        Some(json!({"message": "release freeze"})),
    );
    assert_eq!(locked.status, 200, "{locked:?}");
    assert_eq!(locked.json()["user"], "ci@api");
    assert_eq!(locked.json()["message"], "release freeze");
    assert_eq!(api.get("/v1/lock").json()["message"], "release freeze");

    let refused = api.call("POST", "/v1/deploys", Some(json!({"release": "blue.zip"})));
    assert_eq!(refused.status, 423, "{refused:?}");
    assert!(
        refused.error().contains("locked by ci@api") && refused.error().contains("release freeze"),
        "{refused:?}"
    );
    // The command line sees the API's lock, and the API the command line's.
    env.c2(&["start", "blue.zip"])
        .fails_with("locked by ci@api");
    assert_eq!(api.call("DELETE", "/v1/lock", None).status, 204);
    assert_eq!(api.get("/v1/lock").json(), json!(null));
    env.c2(&["lock", "acquire", "-m", "on call"]).ok();
    let refused = api.call("DELETE", "/v1/deploys/blue", None);
    assert_eq!(refused.status, 423, "{refused:?}");
    env.c2(&["lock", "release"]).ok();

    let empty = api.call("PUT", "/v1/lock", Some(json!({"message": " "})));
    assert_eq!(empty.status, 400, "{empty:?}");
    assert_eq!(api.get("/v1/lock").json(), json!(null));
}

#[test]
fn without_a_valid_token_nothing_is_shown_and_a_read_token_changes_nothing() {
    let (env, api) = captain();
    assert_eq!(api.get_as("", "/healthz").body, "ok");
    assert_eq!(api.get_as("", "/openapi.json").json()["openapi"], "3.0.3");

    let none = api.get_as("", "/v1/status");
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"c2\"")
    );
    let wrong = api.get_as("c2_not-a-token", "/v1/deploys");
    assert_eq!(
        (wrong.status, wrong.error().as_str()),
        (401, "unknown token")
    );
    // The page asks a browser for Basic, and takes the token as password.
    let page = api.get_as("", "/");
    assert_eq!(page.status, 401);
    assert!(page
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm=\"c2\""));
    let basic = api.request(
        "",
        "GET",
        "/",
        None,
        &["-u", &format!("anyone:{}", api.read)],
    );
    assert_eq!(basic.status, 200, "{basic:?}");
    assert!(basic.body.contains("<title>c2</title>"));

    let before = env.state();
    let forbidden = api.request(
        &api.read,
        "POST",
        "/v1/deploys",
        Some(r#"{"release": "blue.zip"}"#),
        &["-H", "Content-Type: application/json"],
    );
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(forbidden.error().contains("token viewer may only read"));
    assert_eq!(env.state(), before);

    // Neither the tokens file, the log nor the server's output holds a token.
    let kept = env.read("etc/tokens.json");
    let log = env.read("log/c2.log");
    for token in [&api.deploy, &api.read] {
        let secret = token.trim_start_matches("c2_");
        for (what, text) in [
            ("tokens file", &kept),
            ("log", &log),
            ("output", &api.printed()),
        ] {
            assert!(!text.contains(secret), "a token is in the {what}");
        }
    }
    let listed = env.c2(&["api-token", "list"]).ok().stdout;
    assert_eq!(listed, "ci deploy\nviewer read\n");
}

#[test]
fn a_change_takes_json_only_and_small_bodies_and_says_what_is_wrong() {
    let (env, api) = captain();
    let before = env.state();
    // A form from another site: refused before anything is read.
    let form = api.request(
        &api.deploy,
        "POST",
        "/v1/deploys",
        Some("release=blue.zip"),
        &["-H", "Content-Type: application/x-www-form-urlencoded"],
    );
    assert_eq!(form.status, 415, "{form:?}");
    let big = "x".repeat(1 << 20);
    let huge = api.request(
        &api.deploy,
        "POST",
        "/v1/deploys",
        Some(&format!(r#"{{"release": "{big}"}}"#)),
        &["-H", "Content-Type: application/json"],
    );
    assert_eq!(huge.status, 413, "{huge:?}");
    for (body, status, error) in [
        (json!({"label": "x"}), 400, "missing field `release`"),
        (
            json!({"release": "blue.zip", "colour": 1}),
            400,
            "unknown field `colour`",
        ),
        (
            json!({"release": "../etc/passwd.zip"}),
            400,
            "../etc/passwd.zip",
        ),
        (
            json!({"release": "nowhere.zip"}),
            404,
            "Release nowhere.zip does not exist",
        ),
    ] {
        let reply = api.call("POST", "/v1/deploys", Some(body));
        assert_eq!(reply.status, status, "{reply:?}");
        assert!(reply.error().contains(error), "{reply:?}");
    }
    // A mistyped dry run must not make the change it meant to preview.
    let typo = api.call(
        "POST",
        "/v1/deploys?dryrun=true",
        Some(json!({"release": "blue.zip"})),
    );
    assert_eq!(typo.status, 400, "{typo:?}");
    let not_remote = api.call(
        "POST",
        "/v1/deploys?await=true",
        Some(json!({"release": "blue.zip"})),
    );
    assert_eq!(not_remote.status, 400, "{not_remote:?}");
    assert!(
        not_remote.error().contains("remote state"),
        "{not_remote:?}"
    );
    assert_eq!(api.get("/v1/history?limit=99999").status, 400);
    assert_eq!(api.get("/v1/nowhere").status, 404);
    assert_eq!(api.call("PATCH", "/v1/deploys", None).status, 405);
    assert_eq!(env.state(), before);
}

#[test]
fn ten_concurrent_starts_get_ten_ports_and_no_update_is_lost() {
    let (env, api) = captain();
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..10)
            .map(|i| {
                let api = &api;
                s.spawn(move || {
                    api.call(
                        "POST",
                        "/v1/deploys",
                        Some(json!({"release": "blue.zip", "label": format!("b{i}")})),
                    )
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let mut ports: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{r:?}");
            r.json()["port"].as_u64().unwrap()
        })
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 10, "{ports:?}");
    assert_eq!(env.state()["deploys"].as_object().unwrap().len(), 10);
    // Each answers on its own port.
    for port in ports {
        let reply = crate::common::http::get(port as u16, "x", "/");
        assert_eq!(reply.status, 200);
    }
}

#[test]
fn a_stalled_client_is_cut_off_while_others_are_served() {
    let (_env, api) = captain();
    let mut stalled = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    stalled
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    let began = Instant::now();
    // Others are served meanwhile.
    assert_eq!(api.get("/v1/deploys").status, 200);
    for conn in [&mut stalled, &mut silent] {
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = Vec::new();
        // The server closes it: the read ends (EOF or reset), not times out.
        let ended = conn.read_to_end(&mut rest);
        let waited = began.elapsed();
        assert!(
            waited < Duration::from_secs(25),
            "cut off after {waited:?}: {ended:?}"
        );
    }
}
