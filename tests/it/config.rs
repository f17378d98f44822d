//! Finding and parsing the config and the command surface,
//! through the real binary.

use crate::common::{write_file, Env, Format, Run};
use serde_json::json;

#[test]
fn help_version_and_default_nginx_config_need_no_config() {
    let out = Run::new(&["help"]).ok();
    for cmd in [
        "list-releases",
        "fetch-context",
        "slave-update",
        "le-cleanup-hook",
    ] {
        assert!(out.stdout.contains(cmd), "help does not mention {cmd}");
    }
    let version = Run::new(&["version"]).ok().stdout;
    assert_eq!(Run::new(&["--version"]).ok().stdout, version);
    // The commit this checkout is at, dirty when tracked files differ (the
    // build saw the same tree: cargo built it for this run).
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit += "-dirty";
    }
    let prefix = format!("c2 {} (commit {commit}, ", env!("CARGO_PKG_VERSION"));
    assert!(
        version.starts_with(&prefix)
            && version[prefix.len()..].starts_with(std::env::consts::ARCH)
            && version.ends_with(")\n"),
        "{version:?} is not {prefix}<target>)"
    );
    let nginx = Run::new(&["show-default-nginx-config"]).ok().stdout;
    assert!(nginx.contains("default_server") && nginx.contains("{{#endPoints}}"));
}

#[test]
fn every_command_of_the_spec_exists() {
    for cmd in [
        "help",
        "version",
        "list-releases",
        "show-log",
        "show-default-nginx-config",
        "fetch-context",
        "unpack",
        "expand-template",
        "aws-docker-login-cmd",
        "start",
        "stop",
        "status",
        "connect",
        "disconnect",
        "restart-frontend-proxy",
        "shutdown-frontend-proxy",
        "generate-ssl-certificate",
        "slave-update",
        "slave-flush",
        "le-get-certs",
        "le-auth-hook",
        "le-cleanup-hook",
    ] {
        let out = Run::new(&[cmd, "--help"]).output();
        assert_eq!(out.code, Some(0), "`c2 {cmd} --help` failed:\n{out}");
        assert!(out.stdout.contains("Usage: c2"), "{cmd}:\n{out}");
    }
}

#[test]
fn an_unknown_command_fails() {
    let out = Run::new(&["deploy-everything"]).output();
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("deploy-everything"));
}

#[test]
fn json_and_yaml_configs_give_the_same_result() {
    for format in [Format::Json, Format::Yaml] {
        let mut env = Env::new();
        env.format(format);
        env.release("a.zip").publish();
        assert_eq!(env.c2(&["list-releases"]).ok().stdout, "a.zip\n");
    }
}

#[test]
fn the_config_comes_from_camus2_config_when_no_flag_is_given() {
    let env = Env::new();
    env.release("a.zip").publish();
    let path = env.write_config();
    let out = Run::new(&["list-releases"])
        .env("CAMUS2_CONFIG", path.to_str().unwrap())
        .ok();
    assert_eq!(out.stdout, "a.zip\n");
}

#[test]
fn the_config_defaults_to_etc_beside_the_executable() {
    // Install c2 as an operator would: <prefix>/bin/c2 and <prefix>/etc/camus2.yaml.
    let mut env = Env::new();
    env.format(Format::Yaml);
    env.release("a.zip").publish();
    let written = env.write_config();
    let prefix = env.path("opt");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("etc")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_c2"), prefix.join("bin/c2")).unwrap();
    std::fs::copy(&written, prefix.join("etc/camus2.yaml")).unwrap();
    let out = std::process::Command::new(prefix.join("bin/c2"))
        .arg("list-releases")
        .env_remove("CAMUS2_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a.zip\n");

    // With no config anywhere, the error lists every path tried.
    std::fs::remove_file(prefix.join("etc/camus2.yaml")).unwrap();
    let out = std::process::Command::new(prefix.join("bin/c2"))
        .arg("list-releases")
        .env_remove("CAMUS2_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("camus2.json") && err.contains("camus2.yaml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    Run::new(&["--config", "/nonexistent/c2.json", "list-releases"])
        .fails_with("cannot read config file /nonexistent/c2.json");
}

#[test]
fn parse_errors_name_the_file_and_the_path_inside_it() {
    let mut env = Env::new();
    env.format(Format::Yaml);
    env.set(
        "deployMode",
        json!({"proxy": {"endPoints": {"main": {"serverNames": ["a"], "etype": 3}}}}),
    );
    env.c2(&["list-releases"]).fails_with(
        "camus2.yaml: deployMode.proxy.endPoints.main.etype: expected string or singleton object for union",
    );

    let mut env = Env::new();
    env.set(
        "deployMode",
        json!({"proxy": {"endPoints": {}}, "noproxy": null}),
    );
    env.c2(&["list-releases"])
        .fails_with("camus2.json: deployMode: expected string or singleton object for union");

    let mut env = Env::new();
    env.set(
        "deployMode",
        json!({"proxy": {"endPoints": {}, "dynamicPortRange": {"v1": -1, "v2": 8100}}}),
    );
    env.c2(&["list-releases"])
        .fails_with("camus2.json: deployMode.proxy.dynamicPortRange.v1: invalid value");

    let env = Env::new();
    let path = env.path("etc/broken.json");
    write_file(&path, "{\"releases\": ");
    Run::new(&["--config", path.to_str().unwrap(), "list-releases"])
        .fails_with("broken.json: invalid JSON");
}

#[test]
fn a_missing_required_field_is_named() {
    let env = Env::new();
    let path = env.path("etc/c.json");
    write_file(&path, r#"{"deploysDir": "/tmp"}"#);
    Run::new(&["--config", path.to_str().unwrap(), "list-releases"])
        .fails_with("c.json: missing field `releases`");
}

#[test]
fn unknown_fields_are_accepted_with_a_warning_naming_their_path() {
    let mut env = Env::new();
    env.set("deploysDirr", json!("/typo"));
    env.set(
        "deployMode",
        json!({"proxy": {"endPoints": {"main": {"serverNames": ["a"], "etype": "httpOnly", "colour": "blue"}}}}),
    );
    env.release("a.zip").publish();
    let out = env.c2(&["list-releases"]).ok();
    assert_eq!(out.stdout, "a.zip\n");
    assert!(
        out.stderr
            .contains("camus2.json: unknown field deploysDirr"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("camus2.json: unknown field deployMode.proxy.endPoints.main.colour"),
        "{out}"
    );
}

#[test]
fn adl_encodings_of_unions_and_maybe_are_accepted() {
    // A config in the old tool's style: {"noproxy": null}, Maybe values,
    // explicit defaults.
    let mut env = Env::new();
    env.set("deployMode", json!({"noproxy": null}));
    env.set("healthCheck", json!("nothing"));
    env.set("composeCommand", json!({"just": "docker-compose"}));
    env.release("a.zip").publish();
    assert_eq!(env.c2(&["list-releases"]).ok().stdout, "a.zip\n");

    let mut env = Env::new();
    env.set(
        "deployMode",
        json!({"proxy": {
            "endPoints": {
                "main": {"serverNames": ["a.example", "b.example"], "etype": "httpOnly"},
                "secure": {"serverNames": ["c.example"], "etype": {"httpsWithRedirect": "generated"}},
                "other": {"serverNames": ["d.example"], "etype": {"httpsWithRedirect": {"explicit": {"sslCertificate": "/c.pem", "sslCertificateKey": "/k.pem"}}}}
            },
            "remoteStateS3": {"just": "s3://bucket/state"},
            "dynamicPortRange": {"v1": 9000, "v2": 9010},
            "slaveLabel": {"label": "web1"},
            "nginxConfTemplatePath": "nothing",
            "frontendProxy": {"host": {"nginxBinary": "/usr/sbin/nginx"}},
            "httpPort": 8080
        }}),
    );
    let out = env.c2(&["list-releases"]).ok();
    assert!(!out.stderr.contains("warning"), "{out}");
}

#[test]
fn list_releases_shows_local_files_newest_first() {
    let env = Env::new();
    for (i, name) in ["old.zip", "mid.zip", "new.zip"].iter().enumerate() {
        env.release(name).publish();
        let t = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_700_000_000 + i as u64 * 60);
        let f = std::fs::File::options()
            .write(true)
            .open(env.path(&format!("store/{name}")))
            .unwrap();
        f.set_modified(t).unwrap();
    }
    std::fs::create_dir_all(env.path("store/subdir")).unwrap();
    assert_eq!(
        env.c2(&["list-releases"]).ok().stdout,
        "new.zip\nmid.zip\nold.zip\n"
    );
}

#[test]
fn read_only_commands_do_not_write_the_log_file() {
    let env = Env::new();
    env.release("a.zip").publish();
    env.c2(&["list-releases"]).ok();
    env.c2(&["status"]).ok();
    assert!(!env.exists("log/c2.log"));
}

#[test]
fn a_closed_stdout_neither_fails_the_command_nor_its_log_file() {
    let mut env = Env::new();
    env.context_file("infra", "{}");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut run = env.c2(&["fetch-context"]);
    run.cmd.stdout(writer);
    let out = run.output();
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out}");
    assert!(env.read("log/c2.log").contains("Fetched context 'infra'"));
}

#[test]
fn show_log_prints_the_log_file() {
    let mut env = Env::new();
    env.context_file("infra", "{}");
    env.c2(&["fetch-context"]).ok();
    let out = env.c2(&["show-log"]).ok();
    assert_eq!(out.stdout, env.read("log/c2.log"));
    assert!(out.stdout.contains("Fetched context 'infra'"));
}

/// A proxy-mode Env with endpoint `main`, a release `a.zip` and nothing
/// deployed yet.
fn proxy_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.release("a.zip").publish();
    env
}

/// `c2 start a.zip` fails at load with `needle`, having written nothing.
fn refused_at_load(env: &Env, needle: &str) {
    env.c2(&["start", "a.zip"]).fails_with(needle);
    assert!(!env.exists("deploys/a"), "a deploy was made");
    assert!(
        !env.exists("deploys/frontend-proxy/nginx.conf"),
        "an nginx.conf was written"
    );
}

#[test]
fn values_that_would_inject_nginx_directives_are_refused_at_load() {
    let mut env = proxy_env();
    env.proxy_set(
        "endPoints",
        json!({"inj": {"serverNames": ["inj.localhost; location /etcfiles/ { alias /etc/; } server_name x"], "etype": "httpOnly"}}),
    );
    refused_at_load(
        &env,
        r#"camus2.json: deployMode.proxy.endPoints.inj.serverNames.0: invalid server name "inj.localhost; location"#,
    );

    let mut env = proxy_env();
    env.set(
        "healthCheck",
        json!({"just": {"incomingPath": "/hc { return 200 X; } location /zz", "outgoingPath": "/"}}),
    );
    refused_at_load(
        &env,
        r#"camus2.json: healthCheck.just.incomingPath: invalid URL path "/hc { return 200 X; } location /zz""#,
    );

    let mut env = proxy_env();
    env.set(
        "healthCheck",
        json!({"just": {"incomingPath": "/hc", "outgoingPath": "/;return 200 x"}}),
    );
    refused_at_load(
        &env,
        "camus2.json: healthCheck.just.outgoingPath: invalid URL path",
    );

    let explicit = |cert: &str, key: &str| json!({"main": {"serverNames": ["main.example"], "etype": {"httpsWithRedirect": {"explicit": {"sslCertificate": cert, "sslCertificateKey": key}}}}});
    let mut env = proxy_env();
    env.proxy_set("endPoints", explicit("/c.pem; include /etc/x", "/k.pem"));
    refused_at_load(
        &env,
        "camus2.json: deployMode.proxy.endPoints.main.etype.httpsWithRedirect.explicit.sslCertificate: invalid path",
    );
    let mut env = proxy_env();
    env.proxy_set("endPoints", explicit("/c.pem", "/k.pem\n}"));
    refused_at_load(
        &env,
        "camus2.json: deployMode.proxy.endPoints.main.etype.httpsWithRedirect.explicit.sslCertificateKey: invalid path",
    );

    for (field, value, needle) in [
        ("letsencryptWwwDir", "/var/www { }", "invalid path"),
        ("letsencryptPrefixDir", "/opt/$x", "invalid path"),
        ("autoCertName", "../../etc", "invalid certificate name"),
        ("autoCertName", "a;b", "invalid certificate name"),
    ] {
        let mut env = proxy_env();
        env.set(field, json!(value));
        refused_at_load(&env, &format!("camus2.json: {field}: {needle}"));
    }
}

#[test]
fn server_names_are_host_names_or_nginx_wildcards() {
    let mut env = proxy_env();
    let good = [
        "main.example",
        "*.example.com",
        ".example.org",
        "www.example.*",
        "localhost",
        "my_host.internal",
        "192.168.1.10",
        "xn--bcher-kva.example",
    ];
    env.proxy_set(
        "endPoints",
        json!({"main": {"serverNames": good, "etype": "httpOnly"}}),
    );
    env.c2(&["list-releases"]).ok();

    for bad in [
        "~^www\\d+\\.example\\.com$",
        "_",
        "",
        "a..example",
        "example.com.",
        "-a.example",
        "main.example:8080",
        "*.example.*",
        "*example.com",
        "www.*.example",
        "[::1]",
        "a b",
    ] {
        let mut env = proxy_env();
        env.proxy_set(
            "endPoints",
            json!({"main": {"serverNames": ["ok.example", bad], "etype": "httpOnly"}}),
        );
        env.c2(&["list-releases"]).fails_with(&format!(
            "camus2.json: deployMode.proxy.endPoints.main.serverNames.1: invalid server name {bad:?}"
        ));
    }
}

#[test]
fn every_endpoint_has_server_names_and_no_two_share_one() {
    let mut env = proxy_env();
    env.proxy_set(
        "endPoints",
        json!({"main": {"serverNames": [], "etype": "httpOnly"}}),
    );
    refused_at_load(
        &env,
        "camus2.json: deployMode.proxy.endPoints.main.serverNames: an endpoint needs at least one server name",
    );

    let mut env = proxy_env();
    env.proxy_set(
        "endPoints",
        json!({
            "a": {"serverNames": ["x.example"], "etype": "httpOnly"},
            "b": {"serverNames": ["y.example", "X.Example"], "etype": "httpOnly"}
        }),
    );
    refused_at_load(
        &env,
        "camus2.json: deployMode.proxy.endPoints.b.serverNames.1: X.Example is already a server name of endpoint a",
    );
}

#[test]
fn ports_are_checked_against_each_other_at_load() {
    let (lo, hi) = (20000, 20010);
    let cases = [
        ("httpPort", json!(0), "deployMode.proxy.httpPort: port 0"),
        ("httpsPort", json!(0), "deployMode.proxy.httpsPort: port 0"),
        (
            "dynamicPortRange",
            json!({"v1": 0, "v2": 10}),
            "deployMode.proxy.dynamicPortRange: [0, 10) holds no port",
        ),
        (
            "dynamicPortRange",
            json!({"v1": 9000, "v2": 9000}),
            "deployMode.proxy.dynamicPortRange: [9000, 9000) holds no port",
        ),
        (
            "dynamicPortRange",
            json!({"v1": 9010, "v2": 9000}),
            "deployMode.proxy.dynamicPortRange: [9010, 9000) holds no port",
        ),
        (
            "httpPort",
            json!(lo + 3),
            "deployMode.proxy.dynamicPortRange: [20000, 20010) includes httpPort 20003",
        ),
        (
            "httpsPort",
            json!(lo),
            "deployMode.proxy.dynamicPortRange: [20000, 20010) includes httpsPort 20000",
        ),
        (
            "httpsPort",
            json!(8080),
            "deployMode.proxy.httpsPort: 8080 is also httpPort",
        ),
    ];
    for (field, value, needle) in cases {
        let mut env = proxy_env();
        env.proxy_set("dynamicPortRange", json!({"v1": lo, "v2": hi}));
        env.proxy_set("httpPort", json!(8080));
        env.proxy_set("httpsPort", json!(8443));
        env.c2(&["list-releases"]).ok();
        env.proxy_set(field, value);
        refused_at_load(&env, &format!("camus2.json: {needle}"));
    }

    // The range is half-open: its upper bound may be httpPort.
    let mut env = proxy_env();
    env.proxy_set("dynamicPortRange", json!({"v1": lo, "v2": hi}));
    env.proxy_set("httpPort", json!(hi));
    env.c2(&["list-releases"]).ok();
}

#[test]
fn the_health_check_endpoint_must_be_configured() {
    let mut env = proxy_env();
    env.proxy_set(
        "endPoints",
        json!({
            "main": {"serverNames": ["main.example"], "etype": "httpOnly"},
            "test": {"serverNames": ["test.example"], "etype": "httpOnly"}
        }),
    );
    env.set(
        "healthCheck",
        json!({"just": {"incomingPath": "/hc", "outgoingPath": "/", "endpoint": {"just": "mian"}}}),
    );
    refused_at_load(
        &env,
        "camus2.json: healthCheck.just.endpoint.just: no endpoint called mian (endpoints: main, test)",
    );
}

#[test]
fn a_deploy_label_with_a_newline_is_refused() {
    let env = Env::new();
    env.release("x.zip").publish();
    env.c2(&["start", "x.zip", "a\nb"])
        .fails_with(r#"invalid deploy label "a\nb""#);
    env.c2(&["start", "x.zip", "a b"])
        .fails_with(r#"invalid deploy label "a b""#);
    env.c2(&["status"]).ok();
    let deploys = std::fs::read_dir(env.path("deploys"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(deploys, 0, "a deploy directory was made");
}
