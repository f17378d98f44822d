//! The bundled example (the README's quick start) stays deployable: its
//! zips match their sources, and they deploy, replace and stop.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::common::Env;
use serde_json::json;

fn zip_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

fn dir_entries(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello");

#[test]
fn example_zips_match_their_sources() {
    for v in ["1.0", "2.0"] {
        let zip = zip_entries(&Path::new(EXAMPLE).join(format!("releases/hello-{v}.zip")));
        let src = dir_entries(&Path::new(EXAMPLE).join(format!("src/hello-{v}")));
        assert_eq!(
            zip, src,
            "examples/hello/releases/hello-{v}.zip is stale: rebuild it from src/hello-{v}"
        );
    }
}

#[test]
fn example_releases_deploy_replace_and_stop() {
    let mut env = Env::new();
    env.set(
        "releases",
        json!({"localdir": Path::new(EXAMPLE).join("releases")}),
    );
    let www = env.path("www");
    env.context_file(
        "site",
        &json!({"title": "Hi & welcome", "wwwDir": www, "links": [{"name": "Docs", "url": "/docs"}]}).to_string(),
    );
    env.c2(&["start", "hello-1.0.zip"]).ok();
    let page = env.read("www/index.html");
    assert!(page.contains("<h1>Hi &amp; welcome</h1>"), "{page}");
    assert!(page.contains("Release 1.0 (blue)"), "{page}");
    assert!(page.contains(r#"<a href="/docs">Docs</a>"#), "{page}");
    env.c2(&["start", "hello-2.0.zip"]).ok();
    assert!(env.read("www/index.html").contains("Release 2.0 (green)"));
    env.c2(&["stop", "hello-2.0"]).ok();
    assert!(!env.exists("www/index.html"));
}
