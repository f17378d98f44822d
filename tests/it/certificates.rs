//! Certificates through the real binary: `generate-ssl-certificate`
//! and the
//! Let's Encrypt DNS-01 helpers `le-get-certs`, `le-auth-hook`,
//! `le-cleanup-hook`.
//!
//! Let's Encrypt cannot be reached from here, so a fake `certbot`
//! (tests/support/fake-certbot.py) does locally what certbot and the ACME
//! server would: it records its arguments, proves control of each name
//! (fetching its HTTP-01 challenge through the real nginx, or running the
//! DNS-01 hooks against Route53 in moto and looking at the zone), and writes
//! a self-signed certificate where certbot would. For the docker driver a
//! fake `docker` (tests/support/fake-docker-argv.sh) records every call,
//! one argument per line.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::docker::{in_reload_order, EXEC_TEST, INSPECT};
use crate::common::tls::{https_get, https_port, self_signed_cert};
use crate::common::{self, Env, Moto, Run};
use serde_json::{json, Value};

const FAKE_CERTBOT: &str = include_str!("../support/fake-certbot.py");
const FAKE_DOCKER: &str = include_str!("../support/fake-docker-argv.sh");
const EMAIL: &str = "ops@example.com";

// ---------------------------------------------------------------- helpers

/// Writes an executable into `<root>/fakebin` and returns its path.
fn install(env: &Env, name: &str, text: &str) -> PathBuf {
    let path = env.path("fakebin").join(name);
    common::write_file(&path, text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Puts `<root>/fakebin` first on PATH for every c2 run.
fn fakes_first_on_path(env: &mut Env) {
    let path = format!(
        "{}:{}",
        env.path("fakebin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.env("PATH", &path);
}

/// The fake certbot's installed path and what it recorded.
struct FakeCertbot {
    path: PathBuf,
    dir: PathBuf,
}

impl FakeCertbot {
    fn install(env: &Env) -> FakeCertbot {
        let dir = env.path("certbot-record");
        std::fs::create_dir_all(&dir).unwrap();
        FakeCertbot {
            path: install(env, "certbot", FAKE_CERTBOT),
            dir,
        }
    }

    /// The arguments of every call, one per line, in order.
    fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("args"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn was_called(&self) -> bool {
        self.dir.join("args").exists()
    }

    /// What it observed, one JSON object per line (see the script).
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// The fake certbot first on PATH for every c2 run, told where the
/// frontend proxy listens for plain http.
fn fake_certbot_on_path(env: &mut Env) -> FakeCertbot {
    let certbot = FakeCertbot::install(env);
    fakes_first_on_path(env);
    let port = env.http_port().to_string();
    env.env("FAKE_CERTBOT_DIR", &show(&certbot.dir))
        .env("FAKE_CERTBOT_HTTP_PORT", &port);
    certbot
}

/// Proxy mode (host nginx) with `main` httpOnly and `secure` on a generated
/// certificate for two names, the Let's Encrypt directories under the
/// Env's root, and a contact email.
fn generated_cert_env() -> Env {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    env.proxy_set(
        "endPoints",
        json!({
            "main": {"serverNames": ["main.example"], "etype": "httpOnly"},
            "secure": {"serverNames": ["secure.example", "www.secure.example"],
                       "etype": {"httpsWithRedirect": "generated"}},
        }),
    );
    let (prefix, www) = (env.path("le"), env.path("www"));
    env.set("letsencryptPrefixDir", json!(prefix))
        .set("letsencryptWwwDir", json!(www))
        .set("autoCertContactEmail", json!(EMAIL));
    env
}

/// Where the generated certificate lives.
fn live_dir(env: &Env) -> PathBuf {
    env.path("le/etc/letsencrypt/live/camus2cert")
}

/// The PEM certificate nginx presents on the https port for SNI `host`.
fn served_certificate(env: &Env, host: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", https_port(env)))
        .args(["-servername", host])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(b), Some(e)) => text[b..e + "-----END CERTIFICATE-----".len()].to_string(),
        _ => panic!(
            "no certificate served for {host}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `subject=CN=…` of a PEM certificate.
fn subject(pem: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not a certificate:\n{pem}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ctx_json(env: &Env) -> Value {
    serde_json::from_str(&env.read("deploys/frontend-proxy/nginx.ctx.json")).unwrap()
}

fn port_of(env: &Env, deploy: &str) -> u64 {
    env.state()["deploys"][deploy]["port"].as_u64().unwrap()
}

// ----------------------------------------- generate-ssl-certificate, host

#[test]
fn generate_ssl_certificate_with_the_host_driver_gets_a_certificate_nginx_then_serves() {
    let mut env = generated_cert_env();
    let certbot = fake_certbot_on_path(&mut env);
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "secure", "blue"]).ok();
    let (prefix, www) = (env.path("le"), env.path("www"));

    // No certificate yet: plain http redirects to https, where no TLS
    // server listens, and the context has no certificate paths.
    assert_eq!(env.get("secure.example", "/hello").status, 301);
    assert_eq!(https_get(&env, "secure.example", "/hello").0, "000");
    assert_eq!(
        ctx_json(&env)["endPoints"][1]["https"].get("sslCertPath"),
        None
    );

    // Even with the proxy down (say, after a reboot), the command brings
    // it up first so it can answer the challenges.
    env.c2(&["shutdown-frontend-proxy"]).ok();
    assert_eq!(env.get("secure.example", "/hello").status, 0);

    let out = env.c2(&["generate-ssl-certificate"]).ok();
    // [better] the proxy is restarted before certbot runs and again after,
    // so the new certificate is served at once.
    let log = out.log_messages();
    let restart = "Restarting the frontend proxy";
    assert_eq!(log.first().map(String::as_str), Some(restart), "{out}");
    assert_eq!(log.last().map(String::as_str), Some(restart), "{out}");
    assert_eq!(log.iter().filter(|m| *m == restart).count(), 2, "{out}");

    // certbot ran once, on the host, in webroot mode, with everything
    // under the configured prefix.
    let le = show(&prefix.join("etc/letsencrypt"));
    assert_eq!(
        certbot.args(),
        strings(&[
            "certonly",
            "--cert-name",
            "camus2cert",
            "--preferred-challenge",
            "http-01",
            "--webroot",
            "--webroot-path",
            &show(&www),
            "-m",
            EMAIL,
            // No chmod deploy hook on the host: the keys stay private.
            "--non-interactive",
            "--agree-tos",
            "--debug",
            "--config-dir",
            &le,
            "--logs-dir",
            &show(&prefix.join("var/log/letsencrypt")),
            "--work-dir",
            &show(&prefix.join("var/lib/letsencrypt")),
            "-d",
            "secure.example",
            "-d",
            "www.secure.example",
        ])
    );
    // While it ran, nginx served each name's HTTP-01 challenge from the
    // webroot, as Let's Encrypt would have fetched it.
    let events = certbot.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    for (event, name) in events.iter().zip(["secure.example", "www.secure.example"]) {
        assert_eq!(event["challenge"], "http-01");
        assert_eq!(event["domain"], name);
        assert_eq!(
            (&event["status"], &event["body"]),
            (&json!(200), &event["expected"]),
            "{event}"
        );
    }
    // The private key nginx serves with is not readable by others.
    let key = prefix.join("etc/letsencrypt/live/camus2cert/privkey.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o077;
    assert_eq!(mode & 0o004, 0, "privkey.pem is world-readable");

    // Afterwards the proxy serves the new certificate for both names and
    // routes https to the deploy.
    assert_eq!(
        https_get(&env, "secure.example", "/hello?x=1"),
        ("200".to_string(), "blue /hello?x=1".to_string())
    );
    assert_eq!(
        https_get(&env, "www.secure.example", "/"),
        ("200".to_string(), "blue /".to_string())
    );
    let fullchain = std::fs::read_to_string(live_dir(&env).join("fullchain.pem")).unwrap();
    for name in ["secure.example", "www.secure.example"] {
        let served = served_certificate(&env, name);
        assert_eq!(
            served.trim(),
            fullchain.trim(),
            "not the fake's certificate"
        );
        assert_eq!(subject(&served), "subject=CN=secure.example");
    }
    assert_eq!(
        ctx_json(&env)["endPoints"][1],
        json!({"https": {
            "serverNames": "secure.example www.secure.example",
            "port": port_of(&env, "blue"),
            "sslCertPath": live_dir(&env).join("fullchain.pem"),
            "sslCertKeyPath": live_dir(&env).join("privkey.pem"),
            "letsencryptWwwDir": www,
        }})
    );
    // The httpOnly endpoint is untouched by all this.
    assert_eq!(
        ctx_json(&env)["endPoints"][0],
        json!({"http": {"serverNames": "main.example"}})
    );
}

// --------------------------------------- generate-ssl-certificate, docker

/// One recorded call of the fake docker.
#[derive(Debug)]
struct Call {
    dir: PathBuf,
    argv: Vec<String>,
}

/// The fake docker's calls since the last `take_calls`, oldest first.
fn take_calls(env: &Env) -> Vec<Call> {
    let log = env.path("docker-calls.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let mut calls: Vec<Call> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("@ ") {
            Some(dir) => calls.push(Call {
                dir: dir.into(),
                argv: Vec::new(),
            }),
            None => calls
                .last_mut()
                .expect("a call starts with its directory")
                .argv
                .push(line.to_string()),
        }
    }
    calls
}

fn joined(call: &Call) -> String {
    call.argv.join(" ")
}

#[test]
fn generate_ssl_certificate_with_the_docker_driver_runs_certbot_in_docker_between_two_restarts() {
    let mut env = generated_cert_env();
    env.proxy_set("frontendProxy", json!("docker"));
    install(&env, "docker", FAKE_DOCKER);
    let certbot = FakeCertbot::install(&env);
    fakes_first_on_path(&mut env);
    env.env("FAKE_DOCKER_LOG", &show(&env.path("docker-calls.log")))
        .env("FAKE_CERTBOT_DIR", &show(&certbot.dir));
    env.http_release("blue.zip").publish();
    env.c2(&["start", "blue.zip"]).ok();
    env.c2(&["connect", "secure", "blue"]).ok();
    take_calls(&env);
    let (prefix, www) = (show(&env.path("le")), show(&env.path("www")));

    env.c2(&["generate-ssl-certificate"]).ok();

    let calls = take_calls(&env);
    let certbot_run = calls.get(6).map(joined).unwrap_or_default();
    let sighup = "docker kill --signal=SIGHUP frontendproxy";
    // The driver asks whether the proxy container runs, beside a `nginx -t`
    // in it, and again after bringing it up; the fake docker answers
    // nothing: not running.
    let mut ran: Vec<String> = calls.iter().map(joined).collect();
    in_reload_order(&mut ran);
    assert_eq!(
        ran,
        [
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            sighup,
            INSPECT,
            // checked argument by argument below
            &certbot_run,
            INSPECT,
            EXEC_TEST,
            "docker compose version",
            "docker compose up -d",
            sighup,
            INSPECT,
        ]
    );
    let challenge = format!("{www}/.well-known/acme-challenge");
    assert_eq!(
        calls[6].argv,
        strings(&[
            "docker",
            "run",
            "--rm",
            "--name",
            "camus2cert",
            "-v",
            &format!("{prefix}/etc/letsencrypt:/etc/letsencrypt"),
            "-v",
            &format!("{prefix}/var/log/letsencrypt:/var/log/letsencrypt"),
            "-v",
            &format!("{challenge}:{challenge}"),
            "certbot/certbot",
            "certonly",
            "--cert-name",
            "camus2cert",
            "--preferred-challenge",
            "http-01",
            "--webroot",
            "--webroot-path",
            &www,
            "-m",
            EMAIL,
            "--deploy-hook",
            "chmod -R ag+rX /etc/letsencrypt",
            "--non-interactive",
            "--agree-tos",
            "--debug",
            "-d",
            "secure.example",
            "-d",
            "www.secure.example",
        ])
    );
    // Every docker call ran in the proxy directory.
    let proxy_dir = env.path("deploys/frontend-proxy").canonicalize().unwrap();
    for call in &calls {
        assert_eq!(call.dir, proxy_dir, "{} ran elsewhere", joined(call));
    }
    // The host directories docker mounts exist, so docker does not create
    // them owned by root; the host's certbot was not used.
    for dir in [
        "le/etc/letsencrypt",
        "le/var/log/letsencrypt",
        "www/.well-known/acme-challenge",
    ] {
        assert!(env.path(dir).is_dir(), "{dir} missing");
    }
    assert!(!certbot.was_called());
    assert_eq!(env.state()["connections"], json!({"secure": "blue"}));
}

// ------------------------------- generate-ssl-certificate, nothing to do

#[test]
fn generate_ssl_certificate_needs_an_email_and_something_to_certify() {
    // No contact email: refused, certbot never runs.
    let mut env = generated_cert_env();
    env.set("autoCertContactEmail", json!(""));
    let certbot = fake_certbot_on_path(&mut env);
    env.c2(&["generate-ssl-certificate"])
        .fails_with("Need autoCertContactEmail specified in the config");
    assert!(!certbot.was_called());
    assert!(!live_dir(&env).exists());

    // An email but no endpoint on a generated certificate (an explicit
    // certificate does not count): nothing to request, and that is fine.
    let (cert, key) = self_signed_cert(&env, "api.example");
    env.set("autoCertContactEmail", json!(EMAIL));
    env.proxy_set(
        "endPoints",
        json!({
            "api": {"serverNames": ["api.example"], "etype": {"httpsWithRedirect":
                {"explicit": {"sslCertificate": cert, "sslCertificateKey": key}}}},
            "main": {"serverNames": ["main.example"], "etype": "httpOnly"},
        }),
    );
    let out = env.c2(&["generate-ssl-certificate"]).ok();
    assert!(
        out.log_messages()
            .iter()
            .any(|m| m == "No servers requiring a certificate"),
        "{out}"
    );
    assert!(!certbot.was_called());
    assert!(!live_dir(&env).exists());
}

// ------------------------------------------------ le-get-certs (DNS-01)

/// A Route53 hosted zone in moto; returns its bare id (`Z…`).
fn create_hosted_zone(moto: &Moto, name: &str) -> String {
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    let reference = format!("c2-test-{}-{name}", std::process::id());
    let out = moto
        .block_on(
            client
                .create_hosted_zone()
                .name(name)
                .caller_reference(reference)
                .send(),
        )
        .unwrap_or_else(|e| panic!("create hosted zone {name}: {e:?}"));
    let id = out.hosted_zone().expect("a hosted zone").id();
    id.trim_start_matches("/hostedzone/").to_string()
}

/// The zone's TXT records as (name, ttl, values), sorted by name.
fn txt_records(moto: &Moto, zone: &str) -> Vec<(String, i64, Vec<String>)> {
    let client = aws_sdk_route53::Client::new(&moto.sdk_config());
    let out = moto
        .block_on(
            client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .send(),
        )
        .unwrap();
    let mut records: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.r#type().as_str() == "TXT")
        .map(|r| {
            (
                r.name().to_string(),
                r.ttl().unwrap_or(-1),
                r.resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect(),
            )
        })
        .collect();
    records.sort();
    records
}

/// The TXT records a fake-certbot event saw, as `txt_records` returns them.
fn seen_txt(event: &Value) -> Vec<(String, i64, Vec<String>)> {
    let mut records: Vec<_> = event["txt"]
        .as_array()
        .unwrap_or_else(|| panic!("no listing in {event}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["ttl"].as_i64().unwrap_or(-1),
                r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    records.sort();
    records
}

/// A Let's Encrypt helper config under the Env's root.
fn letsencrypt_config(env: &Env, certbot: &Path, zone: &str) -> PathBuf {
    let path = env.path("etc/letsencrypt-aws.json");
    common::write_file(
        &path,
        &json!({
            "certbotPath": certbot,
            "awsHostedZoneId": zone,
            "basedir": env.path("le-dns"),
            "email": EMAIL,
            "domains": ["example.test", "www.example.test"],
        })
        .to_string(),
    );
    path
}

#[test]
fn le_get_certs_proves_each_domain_through_a_route53_txt_record_and_cleans_up() {
    let moto = Moto::shared();
    let zone = create_hosted_zone(moto, "example.test");
    let env = Env::new();
    let certbot = FakeCertbot::install(&env);
    let config = letsencrypt_config(&env, &certbot.path, &zone);
    let mut run = Run::new(&["le-get-certs"])
        .env("HX_LETSENCRYPT_CONFIG", &show(&config))
        .env("FAKE_CERTBOT_DIR", &show(&certbot.dir))
        .env("FAKE_CERTBOT_ZONE", &zone);
    for (k, v) in moto.client_env() {
        run = run.env(&k, &v);
    }
    run.cmd.current_dir(env.path(""));

    run.ok();

    // certbot got exactly the old tool's arguments, c2 itself as its hooks.
    let exe = env!("CARGO_BIN_EXE_c2");
    let basedir = show(&env.path("le-dns"));
    assert_eq!(
        certbot.args(),
        strings(&[
            "--manual",
            "--config-dir",
            &format!("{basedir}/config"),
            "--work-dir",
            &format!("{basedir}/work"),
            "--logs-dir",
            &format!("{basedir}/logs"),
            "--preferred-challenges",
            "dns",
            "--manual-auth-hook",
            &format!("{exe} le-auth-hook"),
            "--manual-cleanup-hook",
            &format!("{exe} le-cleanup-hook"),
            "--manual-public-ip-logging-ok",
            "--agree-tos",
            "-n",
            "-m",
            EMAIL,
            "-d",
            "example.test,www.example.test",
            "certonly",
        ])
    );

    // Each auth hook published its validation, quoted, TTL 60, and each
    // cleanup hook removed its own record only.
    let events = certbot.events();
    assert_eq!(events.len(), 4, "{events:#?}");
    for e in &events {
        assert_eq!(e["exit"], 0, "a hook failed: {e}");
    }
    let record = |i: usize| {
        let e = &events[i];
        let domain = e["domain"].as_str().unwrap();
        let validation = e["validation"].as_str().unwrap();
        (
            format!("_acme-challenge.{domain}."),
            60,
            vec![format!("\"{validation}\"")],
        )
    };
    let hooks: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["hook"].as_str().unwrap(), e["domain"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("auth", "example.test"),
            ("auth", "www.example.test"),
            ("cleanup", "example.test"),
            ("cleanup", "www.example.test"),
        ]
    );
    assert_eq!(seen_txt(&events[0]), [record(0)]);
    assert_eq!(seen_txt(&events[1]), [record(0), record(1)]);
    assert_eq!(seen_txt(&events[2]), [record(1)]);
    assert_eq!(seen_txt(&events[3]), []);
    assert_eq!(txt_records(moto, &zone), []);

    // And the certificate is where certbot keeps it.
    let live = env.path("le-dns/config/live/example.test");
    for file in ["fullchain.pem", "privkey.pem"] {
        assert!(live.join(file).is_file(), "{file} missing");
    }
    let fullchain = std::fs::read_to_string(live.join("fullchain.pem")).unwrap();
    assert_eq!(subject(&fullchain), "subject=CN=example.test");
}

// ------------------------------------------------------ the hooks alone

#[test]
fn the_hooks_outside_certbot_fail_naming_the_missing_variable() {
    let env = Env::new();
    let config = letsencrypt_config(&env, Path::new("/nonexistent/certbot"), "ZNOTUSED");
    // An AWS endpoint where nothing listens: no hook may get that far.
    let nowhere = format!("http://127.0.0.1:{}", common::moto::free_port());
    let hook = |name: &str, vars: &[(&str, &str)]| {
        let mut run = Run::new(&[name])
            .env("HX_LETSENCRYPT_CONFIG", &show(&config))
            .env("AWS_ENDPOINT_URL", &nowhere)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1");
        run.cmd
            .env_remove("CERTBOT_DOMAIN")
            .env_remove("CERTBOT_VALIDATION");
        for (k, v) in vars {
            run = run.env(k, v);
        }
        run
    };

    for name in ["le-auth-hook", "le-cleanup-hook"] {
        // One line on stderr naming the variable and who sets it.
        let out = hook(name, &[("CERTBOT_VALIDATION", "v")]).fails_with(
            "c2: error: CERTBOT_DOMAIN is not set: le-auth-hook and le-cleanup-hook are run by certbot",
        );
        assert_eq!(out.stdout, "", "{out}");
        let out = hook(name, &[("CERTBOT_DOMAIN", "example.test")])
            .fails_with("CERTBOT_VALIDATION is not set");
        assert_eq!(out.stdout, "", "{out}");
    }
}
