//! A running `c2 serve` for an Env, with a deploy token and a read token,
//! asked with curl: a real HTTP client, nothing of c2's in between.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{moto, wait_until, Env};

/// `c2 serve`, stopped (SIGTERM, then waited for) when dropped.
pub struct Api {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    /// A `deploy` token called `ci`.
    pub deploy: String,
    /// A `read` token called `viewer`.
    pub read: String,
    /// Where the server's stdout and stderr go.
    pub output: PathBuf,
    /// Extra curl arguments (TLS: the CA).
    curl: Vec<String>,
}

/// An answer: status code, headers (lowercase names), body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The `error` of a JSON error.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {self:?}"))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

impl Api {
    /// Configures the API on a free loopback port with two tokens, and
    /// starts `c2 serve`.
    pub fn serve(env: &mut Env) -> Api {
        Api::serve_on(env, "127.0.0.1", &[])
    }

    /// The same on `host` (an address), with extra `c2 serve` arguments.
    pub fn serve_on(env: &mut Env, host: &str, args: &[&str]) -> Api {
        let port = moto::free_port();
        let listen = format!("{host}:{port}");
        let mut api = env.config()["api"].clone();
        if api.is_null() {
            api = json!({});
        }
        api["listen"] = json!(listen);
        api["tokensFile"] = json!(env.path("etc/tokens.json"));
        env.set("api", api);
        let deploy = env
            .c2(&["api-token", "add", "ci", "--role", "deploy"])
            .ok()
            .stdout;
        let read = env
            .c2(&["api-token", "add", "viewer", "--role", "read"])
            .ok()
            .stdout;
        let tls = &env.config()["api"]["tls"];
        let (scheme, curl) = match tls["certFile"].as_str() {
            Some(cert) => ("https", vec!["--cacert".to_string(), cert.to_string()]),
            None => ("http", Vec::new()),
        };
        let mut api = Api {
            child: None,
            url: format!("{scheme}://localhost:{port}"),
            port,
            deploy: deploy.trim().to_string(),
            read: read.trim().to_string(),
            output: env.path("serve.out"),
            curl,
        };
        api.start(env, args);
        api
    }

    /// Starts the server and waits until it answers.
    fn start(&mut self, env: &Env, args: &[&str]) {
        let out = std::fs::File::create(&self.output).unwrap();
        let mut serve = vec!["serve"];
        serve.extend_from_slice(args);
        let mut run = env.c2(&serve);
        run.cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        self.child = Some(run.cmd.spawn().expect("c2 serve"));
        wait_until(Duration::from_secs(20), "c2 serve answers", || {
            self.exited().is_none() && self.get_as("", "/healthz").status == 200
        });
    }

    /// Trusts `ca` for https.
    pub fn trust(&mut self, ca: &std::path::Path) {
        self.curl = vec!["--cacert".into(), ca.display().to_string()];
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The exit status, once the server exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// What the server printed.
    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// GET with the read token.
    pub fn get(&self, path: &str) -> Reply {
        self.get_as(&self.read, path)
    }

    /// GET with `token` (none when empty).
    pub fn get_as(&self, token: &str, path: &str) -> Reply {
        self.request(token, "GET", path, None, &[])
    }

    /// A change with the deploy token: `body` sent as JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.request(
            &self.deploy,
            method,
            path,
            body.as_deref(),
            &["-H", "Content-Type: application/json"],
        )
    }

    /// Any request: `token` as Bearer (none when empty), raw `body`,
    /// extra curl arguments.
    pub fn request(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[&str],
    ) -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "120", "-D", "-", "-X", method])
            .args(&self.curl)
            .args(extra);
        if !token.is_empty() {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        // From a file: a body may be longer than an argument can be.
        let file = tempfile::NamedTempFile::new().unwrap();
        if let Some(body) = body {
            std::fs::write(file.path(), body).unwrap();
            cmd.arg("--data-binary")
                .arg(format!("@{}", file.path().display()));
        }
        cmd.arg(format!("{}{path}", self.url));
        let out = cmd.output().expect("curl");
        parse(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Splits curl's `-D -` output: the last header block, then the body.
fn parse(text: &str) -> Reply {
    let mut rest = text;
    loop {
        let Some((head, body)) = rest.split_once("\r\n\r\n") else {
            return Reply {
                status: 0,
                headers: String::new(),
                body: text.to_string(),
            };
        };
        let status: u16 = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // `100 Continue` comes before the real answer.
        if status == 100 {
            rest = body;
            continue;
        }
        return Reply {
            status,
            headers: head.to_string(),
            body: body.to_string(),
        };
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(child.id());
            let _ = child.wait();
        }
    }
}
