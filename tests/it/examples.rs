//! The bundled example (the README's quick start) stays what the README
//! says: its zips hold exactly their sources, and `examples/quickstart.sh`
//! runs both releases behind a real nginx (host driver), switches the
//! endpoint from one to the other, and leaves nothing running.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use crate::common::Env;

fn zip_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .filter_map(|i| {
            let mut f = z.by_index(i).unwrap();
            if f.is_dir() {
                return None;
            }
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            Some((f.name().to_string(), data))
        })
        .collect()
}

/// Every file under `dir`, by its path relative to `dir`.
fn dir_entries(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello");

#[test]
fn example_zips_match_their_sources() {
    for v in ["1.0", "2.0"] {
        let zip = zip_entries(&Path::new(EXAMPLE).join(format!("releases/hello-{v}.zip")));
        let src = dir_entries(&Path::new(EXAMPLE).join(format!("src/hello-{v}")));
        assert_eq!(
            zip, src,
            "examples/hello/releases/hello-{v}.zip is stale: run sh examples/hello/build.sh"
        );
    }
}

/// The page hello-`version` serves: its template rendered with the quick
/// start's site context, the release's version.json and its port.
fn page(version: &str, colour: &str, port: u32) -> String {
    format!(
        "<!doctype html>\n\
         <html>\n\
         <head><title>Hello from c2: hello {version}</title></head>\n\
         <body style=\"background: {colour}; color: white; font-family: sans-serif\">\n\
         <h1>hello {version}</h1>\n\
         <p>Hello from c2: release {version} ({colour}), served on port {port}.</p>\n\
         </body>\n\
         </html>\n"
    )
}

/// Whether a process with this pid runs a command line containing one of
/// `names` (a zombie, whose command line is empty, does not count).
fn running(pid: &str, names: &[&str]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            names.iter().any(|n| cmdline.contains(n))
        })
        .unwrap_or(false)
}

#[test]
fn quickstart_switches_main_from_hello_1_to_hello_2_through_nginx_and_cleans_up() {
    // An Env of its own gives the run ports no other test uses.
    let mut ports = Env::new();
    ports.proxy(&[("main", "localhost")]);
    let (deploy_port, _) = ports.port_range();
    let http_port = ports.http_port();
    let work = ports.path("quickstart");

    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("examples/quickstart.sh"))
        .env("C2_BIN", env!("CARGO_BIN_EXE_c2"))
        .env("QUICKSTART_DIR", &work)
        .env("QUICKSTART_PORT", http_port.to_string())
        .env("QUICKSTART_DEPLOY_PORT", deploy_port.to_string())
        .env_remove("CAMUS2_CONFIG")
        .output()
        .expect("run sh examples/quickstart.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "quickstart failed\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );

    // The bytes nginx served for http://localhost/ before and after the switch.
    let served = |file: &str| std::fs::read_to_string(work.join(file)).unwrap();
    assert_eq!(
        served("served-1.0.html"),
        page("1.0", "steelblue", deploy_port)
    );
    assert_eq!(
        served("served-2.0.html"),
        page("2.0", "seagreen", deploy_port + 1)
    );
    assert!(
        served("served-none.html").contains("503 Service Temporarily Unavailable"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  main: (localhost:{http_port}) -> hello-1.0\n\n\
             Deploys:\n\
             \x20 hello-1.0 (hello-1.0.zip): (localhost:{deploy_port})\n\
             \x20 hello-2.0 (hello-2.0.zip): (localhost:{})\n",
            deploy_port + 1
        )),
        "{stdout}"
    );
    // The blue/green rule held: the connected deploy could not be stopped.
    assert!(
        stderr.contains("c2: error: deploy is connected to main"),
        "{stderr}"
    );

    // Nothing left running: the two servers and nginx are gone, their
    // ports refuse connections, and the state is empty.
    let pids = std::fs::read_to_string(work.join("pids")).unwrap();
    let pids: Vec<&str> = pids.lines().collect();
    assert_eq!(pids.len(), 3, "two servers and nginx: {pids:?}");
    for pid in &pids {
        assert!(
            !running(pid, &["http.server", "nginx"]),
            "process {pid} still runs"
        );
    }
    for port in [u32::from(http_port), deploy_port, deploy_port + 1] {
        assert!(
            TcpStream::connect(("127.0.0.1", port as u16)).is_err(),
            "port {port} still answers"
        );
    }
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.join("deploys/frontend-proxy/state.json")).unwrap(),
    )
    .unwrap();
    // No deploy and no route left; the rollback record of `main` (the
    // deploy it had last) stays, as it does after any stop.
    assert_eq!(
        (&state["deploys"], &state["connections"]),
        (&serde_json::json!({}), &serde_json::json!({}))
    );
    assert_eq!(
        state["previousConnections"],
        serde_json::json!({"main": "hello-2.0"})
    );
    assert!(!work.join("deploys/hello-1.0").exists());
    assert!(!work.join("deploys/hello-2.0").exists());
}

#[test]
fn the_example_configs_are_configs_c2_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let shown = path.display().to_string();
        // Reading the lock needs the config parsed; what it reaches after
        // (S3, etcd, files of the example's machine) does not exist here.
        let out = crate::common::Run::new(&["--config", &shown, "lock", "status"]).output();
        // A config c2 refuses is named in the error: `<file name>: <field>: …`.
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!out.stderr.contains(&format!("{name}: ")), "{out}");
        assert!(!out.stderr.contains("lock release"), "{out}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}
