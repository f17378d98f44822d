//! TLS checks through the frontend proxy: curl as the client, openssl to
//! make certificates.

use std::path::PathBuf;
use std::process::Command;

use super::Env;

pub fn https_port(env: &Env) -> u64 {
    env.config()["deployMode"]["proxy"]["httpsPort"]
        .as_u64()
        .unwrap()
}

/// GET over https with curl, `host` resolved to 127.0.0.1, any certificate
/// accepted: (status code, body); the code is "000" when no TLS server
/// answered.
pub fn https_get(env: &Env, host: &str, path: &str) -> (String, String) {
    let port = https_port(env);
    let out = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--resolve",
        ])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// A self-signed certificate and key for `cn` under `<root>/tls`.
pub fn self_signed_cert(env: &Env, cn: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (env.path("tls/cert.pem"), env.path("tls/key.pem"));
    std::fs::create_dir_all(env.path("tls")).unwrap();
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}
