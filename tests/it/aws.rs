//! The AWS helpers against moto's real HTTP server: Secrets Manager context
//! sources, the ECR docker login command, and the Route53 DNS-01 hooks.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::{self, wait_until, Env, Moto, Run};
use base64::Engine;
use serde_json::json;

fn aws_env(moto: &Moto) -> Env {
    let mut env = Env::new();
    for (k, v) in moto.client_env() {
        env.env(&k, &v);
    }
    env
}

fn create_secret(moto: &Moto, name: &str, value: &str) -> String {
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
    moto.block_on(async {
        client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    })
}

/// A secret value that must never show up in logs or messages.
const DB_PASSWORD: &str = "pa55-Zq9x-never-logged";

#[test]
fn a_secret_is_fetched_into_the_context_and_used_by_a_template() {
    let moto = Moto::shared();
    let name = Moto::unique_bucket("db-secret");
    let arn = create_secret(
        moto,
        &name,
        &json!({"user": "app", "password": DB_PASSWORD}).to_string(),
    );
    let mut env = aws_env(moto);
    env.set("configSources", json!({"db": {"awsSecretArn": arn}}));
    env.release("app.zip")
        .template("db.conf.tpl", "user={{db.user}} password={{db.password}}\n")
        .publish();

    let out = env.c2(&["start", "app.zip"]).ok();
    assert_eq!(
        env.read("deploys/app/db.conf"),
        format!("user=app password={DB_PASSWORD}\n")
    );
    let cache = env.path("cache/db.json");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(out
        .stdout
        .contains(&format!("Fetched context 'db' from secret {arn}")));
    for (what, text) in [
        ("stdout", out.stdout.as_str()),
        ("stderr", out.stderr.as_str()),
        ("the log file", &env.read("log/c2.log")),
    ] {
        assert!(!text.contains(DB_PASSWORD), "the secret leaked into {what}");
    }
}

#[test]
fn a_secret_that_is_not_json_is_refused_without_quoting_it() {
    let moto = Moto::shared();
    let arn = create_secret(moto, &Moto::unique_bucket("plain"), DB_PASSWORD);
    let mut env = aws_env(moto);
    env.set("configSources", json!({"db": {"awsSecretArn": arn}}));
    let out = env
        .c2(&["fetch-context"])
        .fails_with(&format!("context source 'db' (secret {arn}): invalid JSON"));
    assert!(!out.stderr.contains(DB_PASSWORD) && !out.stdout.contains(DB_PASSWORD));
    assert!(!env.exists("cache/db.json"));
}

#[test]
fn a_missing_secret_is_named() {
    let moto = Moto::shared();
    let mut env = aws_env(moto);
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf";
    env.set("configSources", json!({"db": {"awsSecretArn": arn}}));
    env.c2(&["fetch-context"])
        .fails_with(&format!("secret {arn} does not exist"));
}

#[test]
fn fetch_context_retry_waits_for_a_secret_created_later() {
    let moto = Moto::shared();
    let name = Moto::unique_bucket("late-secret");
    let mut env = aws_env(moto);
    // Secrets Manager accepts a name where an ARN goes.
    env.set("configSources", json!({"late": {"awsSecretArn": name}}));
    let run = env.c2(&["fetch-context", "--retry"]);
    let started = Instant::now();
    let child = std::thread::spawn(move || run.output());
    // The scenario: the secret appears while c2 is already waiting for it.
    let waiting = format!("Waiting for secret {name}");
    wait_until(Duration::from_secs(30), "c2 to wait for the secret", || {
        std::fs::read_to_string(env.path("log/c2.log")).is_ok_and(|log| log.contains(&waiting))
    });
    create_secret(moto, &name, r#"{"ready": true}"#);
    let out = child.join().unwrap();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.log_messages()
            .contains(&format!("Waiting for secret {name}")),
        "{out}"
    );
    assert_eq!(env.read("cache/late.json"), r#"{"ready": true}"#);
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn aws_docker_login_cmd_prints_the_decoded_login_command() {
    let moto = Moto::shared();
    // What ECR says, asked independently of c2.
    let client = aws_sdk_ecr::Client::new(&moto.sdk_config());
    let data = moto.block_on(async { client.get_authorization_token().send().await.unwrap() });
    let entry = &data.authorization_data()[0];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.authorization_token().unwrap())
        .unwrap();
    let password = String::from_utf8(decoded).unwrap();
    let password = password.strip_prefix("AWS:").unwrap().to_string();
    let registry = entry
        .proxy_endpoint()
        .unwrap()
        .trim_start_matches("https://")
        .to_string();

    let env = aws_env(moto);
    let out = env.c2(&["aws-docker-login-cmd"]).ok();
    assert_eq!(
        out.stdout,
        format!("docker login -u AWS -p {password} {registry}\n")
    );
    assert!(out.stderr.is_empty(), "{out}");
    // Read-only: nothing logged, so the password is in no log file.
    assert!(!env.exists("log/c2.log"));

    let out = env.c2(&["aws-docker-login-cmd", "123456789012"]).ok();
    assert!(out.stdout.starts_with("docker login -u AWS -p "), "{out}");
    assert!(out.stdout.trim_end().ends_with(".amazonaws.com"), "{out}");
}

fn hosted_zone(moto: &Moto, domain: &str) -> String {
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    moto.block_on(async {
        let out = client
            .create_hosted_zone()
            .name(domain)
            .caller_reference(Moto::unique_bucket("ref"))
            .send()
            .await
            .unwrap();
        out.hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string()
    })
}

/// The TXT records of a zone: (name, ttl, values).
fn txt_records(moto: &Moto, zone: &str) -> Vec<(String, i64, Vec<String>)> {
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    moto.block_on(async {
        let out = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        out.resource_record_sets()
            .iter()
            .filter(|r| r.r#type().as_str() == "TXT")
            .map(|r| {
                (
                    r.name().to_string(),
                    r.ttl().unwrap_or_default(),
                    r.resource_records()
                        .iter()
                        .map(|v| v.value().to_string())
                        .collect(),
                )
            })
            .collect()
    })
}

fn letsencrypt_config(env: &Env, zone: &str, verbosity: &str) -> std::path::PathBuf {
    let path = env.path("etc/letsencrypt-aws.json");
    common::write_file(
        &path,
        &json!({
            "certbotPath": "/nonexistent/certbot",
            "awsHostedZoneId": zone,
            "basedir": env.path("le"),
            "email": "ops@example.test",
            "domains": ["example.test"],
            "verbosity": verbosity,
        })
        .to_string(),
    );
    path
}

fn hook(
    moto: &Moto,
    which: &str,
    config: &std::path::Path,
    domain: &str,
    validation: &str,
) -> common::Output {
    let mut run = Run::new(&[which])
        .env("HX_LETSENCRYPT_CONFIG", config.to_str().unwrap())
        .env("CERTBOT_DOMAIN", domain)
        .env("CERTBOT_VALIDATION", validation);
    for (k, v) in moto.client_env() {
        run = run.env(&k, &v);
    }
    run.ok()
}

#[test]
fn the_dns01_hooks_create_and_delete_the_challenge_record() {
    let moto = Moto::shared();
    let domain = format!("{}.test", Moto::unique_bucket("zone"));
    let zone = hosted_zone(moto, &domain);
    let env = Env::new();
    let config = letsencrypt_config(&env, &zone, "noisy");

    let out = hook(moto, "le-auth-hook", &config, &domain, "v4l1d-4t10n");
    assert!(
        out.stdout
            .contains(&format!("Creating TXT _acme-challenge.{domain}")),
        "{out}"
    );
    assert_eq!(
        txt_records(moto, &zone),
        [(
            format!("_acme-challenge.{domain}."),
            60,
            vec!["\"v4l1d-4t10n\"".to_string()]
        )]
    );

    hook(moto, "le-cleanup-hook", &config, &domain, "v4l1d-4t10n");
    assert_eq!(txt_records(moto, &zone), []);
}

#[test]
fn quiet_hooks_print_nothing_and_missing_variables_are_named() {
    let moto = Moto::shared();
    let domain = format!("{}.test", Moto::unique_bucket("quiet"));
    let zone = hosted_zone(moto, &domain);
    let env = Env::new();
    let config = letsencrypt_config(&env, &zone, "quiet");
    let out = hook(moto, "le-auth-hook", &config, &domain, "x");
    assert_eq!(out.stdout, "");
    Run::new(&["le-auth-hook"])
        .env("HX_LETSENCRYPT_CONFIG", config.to_str().unwrap())
        .fails_with("CERTBOT_DOMAIN is not set");
    Run::new(&["le-cleanup-hook"])
        .env("HX_LETSENCRYPT_CONFIG", "/nonexistent/le.json")
        .fails_with("/nonexistent/le.json");
}

#[test]
fn two_validations_on_one_name_coexist_and_are_removed_one_by_one() {
    // A certificate for example.test and *.example.test: certbot runs the
    // auth hook twice with the same CERTBOT_DOMAIN.
    let moto = Moto::shared();
    let domain = format!("{}.test", Moto::unique_bucket("wild"));
    let zone = hosted_zone(moto, &domain);
    let env = Env::new();
    let config = letsencrypt_config(&env, &zone, "quiet");
    let name = format!("_acme-challenge.{domain}.");
    hook(moto, "le-auth-hook", &config, &domain, "one");
    hook(moto, "le-auth-hook", &config, &domain, "two");
    assert_eq!(
        txt_records(moto, &zone),
        [(
            name.clone(),
            60,
            vec!["\"one\"".to_string(), "\"two\"".to_string()]
        )]
    );
    hook(moto, "le-cleanup-hook", &config, &domain, "one");
    assert_eq!(
        txt_records(moto, &zone),
        [(name, 60, vec!["\"two\"".to_string()])]
    );
    hook(moto, "le-cleanup-hook", &config, &domain, "two");
    assert_eq!(txt_records(moto, &zone), []);
}

#[test]
fn templates_rendered_with_a_secret_source_are_not_world_readable() {
    let moto = Moto::shared();
    let name = Moto::unique_bucket("tpl-secret");
    let arn = create_secret(moto, &name, &json!({"password": DB_PASSWORD}).to_string());
    let mut env = aws_env(moto);
    env.set("configSources", json!({"db": {"awsSecretArn": arn}}));
    env.c2(&["fetch-context"]).ok();
    let tpl = env.path("db.conf.tpl");
    common::write_file(&tpl, "password={{db.password}}\n");
    std::fs::set_permissions(&tpl, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dest = env.path("db.conf");
    env.c2(&[
        "expand-template",
        tpl.to_str().unwrap(),
        dest.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(env.read("db.conf"), format!("password={DB_PASSWORD}\n"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dest), 0o640);

    // A release's templates alike (the zip gives them 0644).
    env.release("app.zip")
        .template("db.conf.tpl", "password={{db.password}}\n")
        .publish();
    env.c2(&["start", "app.zip"]).ok();
    assert_eq!(mode(&env.path("deploys/app/db.conf")), 0o640);
}
