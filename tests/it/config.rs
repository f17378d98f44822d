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
    let version = format!("c2 {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(Run::new(&["version"]).ok().stdout, version);
    assert_eq!(Run::new(&["--version"]).ok().stdout, version);
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
