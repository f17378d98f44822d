//! Guard for the switch from ribboncurls: random templates and contexts,
//! rendered by the old (`crate::release::template`) and the new renderer,
//! which must agree on text and warnings wherever the old one succeeds.
//!
//! Deliberate differences, all about the implicit iterator `.` (so templates
//! using it are tallied apart): ribboncurls resolves `{{.}}` as the key named
//! like the innermost section in the current object if there is one, does not
//! push a section's scalar value (so `{{#n}}{{.}}{{/n}}` can miss it), and
//! iterates `{{#.}}` and `{{^.}}` over a list skipping its falsy items. The
//! spec (and the old warnings walk, except for the skipping, which its doc
//! comment notes) says `.` is the current item and every item is visited.
//! The old scanner also could not close a triple mustache when both
//! delimiters are `|` (an error where the new one renders).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Map, Value};

/// splitmix64: small, seeded, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const KEYS: &[&str] = &["a", "b", "list", "obj"];
const NAMES: &[&str] = &[
    "a", "b", "c", "list", "obj", "a.b", "obj.a", "obj.list", "list.b",
];
const DELIMS: &[(&str, &str)] = &[("{{", "}}"), ("<%", "%>"), ("[", "]"), ("|", "|")];
const TEXT: &[&str] = &[
    "x", "yz", " ", "  ", "\t", "\n", "\n", "\r\n", "<&>\"'", "}", "%", "]", "é",
];

struct Gen {
    rng: Rng,
    open: &'static str,
    close: &'static str,
    /// Whether `.` may be used as a name.
    implicit: bool,
    /// Whether partial tags may be generated.
    partials: bool,
}

impl Gen {
    fn blanks(&mut self) -> &'static str {
        self.rng.pick(&["", "", " ", "  ", "\t"])
    }
    fn name(&mut self) -> String {
        let name = if self.implicit && self.rng.chance(15) {
            "."
        } else {
            self.rng.pick(NAMES)
        };
        let pad = if self.rng.chance(20) { " " } else { "" };
        format!("{pad}{name}{pad}")
    }
    fn tag(&self, sigil: &str, name: &str) -> String {
        format!("{}{sigil}{name}{}", self.open, self.close)
    }
    fn newline(&mut self) -> &'static str {
        self.rng.pick(&["\n", "\n", "\r\n"])
    }

    fn template(&mut self, depth: usize) -> String {
        let mut out = String::new();
        for _ in 0..self.rng.below(7) {
            self.element(depth, &mut out);
        }
        out
    }

    fn element(&mut self, depth: usize, out: &mut String) {
        match self.rng.below(12) {
            0..=2 => {
                for _ in 0..=self.rng.below(4) {
                    out.push_str(self.rng.pick(TEXT));
                }
            }
            3 => {
                let name = self.name();
                out.push_str(&self.tag("", &name));
            }
            4 => {
                let name = self.name();
                if self.rng.chance(50) {
                    out.push_str(&self.tag("&", &name));
                } else {
                    let (o, c) = (&self.open[..1], &self.close[..1]);
                    out.push_str(&format!("{}{o}{name}{}{c}", self.open, self.close));
                }
            }
            5..=7 if depth < 4 => {
                // A section, often on standalone lines.
                let name = self.name();
                let sigil = if self.rng.chance(30) { "^" } else { "#" };
                let standalone = self.rng.chance(60);
                if standalone {
                    out.push_str(self.newline());
                    out.push_str(self.blanks());
                }
                out.push_str(&self.tag(sigil, &name));
                if standalone {
                    out.push_str(self.blanks());
                    out.push_str(self.newline());
                }
                out.push_str(&self.template(depth + 1));
                if standalone && self.rng.chance(80) {
                    out.push_str(self.newline());
                    out.push_str(self.blanks());
                }
                out.push_str(&self.tag("/", name.trim()));
                if standalone && self.rng.chance(80) {
                    out.push_str(self.blanks());
                    out.push_str(self.newline());
                }
            }
            8 => {
                let text = self.rng.pick(&["", " note ", "a\nb", " x\r\ny "]);
                self.line_tag(&format!("{}!{text}{}", self.open, self.close), out);
            }
            9 if self.partials => {
                let name = self.rng.pick(&["p1", "p2", "p3", " p1 "]);
                self.line_tag(&self.tag(">", name), out);
            }
            10 => {
                // Never the pair in force: `{{={{ }}=}}` does not parse.
                let (open, close) = self.rng.pick(DELIMS);
                if open == self.open {
                    return;
                }
                let tag = format!("{}={open} {close}={}", self.open, self.close);
                (self.open, self.close) = (open, close);
                self.line_tag(&tag, out);
            }
            _ => out.push_str(self.newline()),
        }
    }

    /// A tag, alone on its line (with blanks) or not.
    fn line_tag(&mut self, tag: &str, out: &mut String) {
        if self.rng.chance(50) {
            out.push_str(self.newline());
            out.push_str(self.blanks());
            out.push_str(tag);
            out.push_str(self.blanks());
            if self.rng.chance(85) {
                out.push_str(self.newline());
            }
        } else {
            out.push_str(tag);
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        let scalars = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(8000),
            json!(-3),
            json!(1.5),
            json!(""),
            json!("s"),
            json!("<&\"'>"),
            json!("two\nlines"),
        ];
        match self.rng.below(if depth < 3 { 16 } else { 11 }) {
            11 | 12 => Value::Array(
                (0..self.rng.below(4))
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            13..=15 => self.object(depth + 1),
            i => scalars[i].clone(),
        }
    }

    fn object(&mut self, depth: usize) -> Value {
        let mut map = Map::new();
        for key in KEYS {
            if self.rng.chance(60) {
                map.insert(key.to_string(), self.value(depth));
            }
        }
        Value::Object(map)
    }
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    compared: usize,
    old_error: usize,
    old_error_new_ok: usize,
    errors_differ: usize,
    old_panic: usize,
    implicit_cases: usize,
    implicit_mismatches: usize,
    implicit_warnings_differ: usize,
    mismatches: usize,
}

#[test]
fn old_and_new_renderers_agree_on_random_templates() {
    let cases: usize = std::env::var("C2_TEMPLATE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        // 100,000 take about a minute in a release build:
        // `cargo test --release --lib old_and_new -- --nocapture`.
        .unwrap_or(if cfg!(debug_assertions) {
            5_000
        } else {
            100_000
        });
    let mut rng = Rng(0x5EED_C2C2);
    let mut tally = Tally::default();
    let mut shown = 0;
    for _ in 0..cases {
        let mut gen = Gen {
            rng: Rng(rng.next()),
            open: "{{",
            close: "}}",
            implicit: rng.chance(30),
            partials: rng.chance(50),
        };
        let template = gen.template(0);
        let mut partials = HashMap::new();
        for name in ["p1", "p2"] {
            (gen.open, gen.close) = ("{{", "}}");
            gen.partials = gen.rng.chance(20);
            partials.insert(name, gen.template(1));
        }
        let context = gen.object(0);
        let mut load = |name: &str| Ok(partials.get(name).cloned());

        tally.cases += 1;
        let old = catch_unwind(AssertUnwindSafe(|| {
            crate::release::template::render_str(&template, &context, &mut load)
        }));
        let mut load = |name: &str| Ok(partials.get(name).cloned());
        let new = super::render_str(&template, &context, &mut load);
        let old = match old {
            Err(_) => {
                tally.old_panic += 1;
                continue;
            }
            Ok(Err(e)) => {
                tally.old_error += 1;
                match new {
                    Ok(_) => {
                        tally.old_error_new_ok += 1;
                        // The old scanner looked for a triple mustache's
                        // closer from the opener on, so with `|` as both
                        // delimiters `||x||` could never close.
                        assert!(
                            e.to_string().contains("unclosed tag: no '||' after '||'"),
                            "{e:#}"
                        );
                    }
                    // The same quirk, met before the new one's error.
                    Err(_) if e.to_string().contains("no '||' after '||'") => {}
                    Err(n) if n.to_string() != e.to_string() => {
                        tally.errors_differ += 1;
                        eprintln!(
                            "ERRORS DIFFER\n  template: {template:?}\n  old: {e:#}\n  new: {n:#}"
                        );
                    }
                    Err(_) => {}
                }
                continue;
            }
            Ok(Ok(old)) => old,
        };
        tally.compared += 1;
        tally.implicit_cases += usize::from(gen.implicit);
        let old = (old.text, old.warnings);
        let new = match new {
            Ok(new) => (new.text, new.warnings),
            Err(e) => (format!("ERROR {e:#}"), vec![]),
        };
        if old != new {
            if gen.implicit {
                tally.implicit_mismatches += 1;
                tally.implicit_warnings_differ += usize::from(old.1 != new.1);
            } else {
                tally.mismatches += 1;
            }
            if shown < 5 {
                shown += 1;
                eprintln!(
                    "MISMATCH (implicit: {})\n  template: {template:?}\n  partials: {partials:?}\n  context:  {context}\n  old: {old:?}\n  new: {new:?}",
                    gen.implicit
                );
            }
        }
    }
    eprintln!("{tally:#?}");
    assert_eq!(tally.mismatches, 0, "{tally:#?}");
}

/// Render time of the built-in nginx template, old and new, in one run:
/// `cargo test --release --lib nginx_template_render_time -- --ignored --nocapture`.
#[test]
#[ignore]
fn nginx_template_render_time() {
    use crate::proxy::nginx::{
        EndPointEntry, HealthCheck, HttpEndPoint, HttpsEndPoint, NginxContext, DEFAULT_TEMPLATE,
    };
    use std::time::{Duration, Instant};

    let end_points = (0..10u32)
        .map(|i| {
            let server_names = format!("app{i}.example.com www.app{i}.example.com");
            // One endpoint of each kind is not connected (it 503s).
            let port = (i % 5 != 4).then_some(8000 + i);
            if i % 2 == 0 {
                EndPointEntry::Http(HttpEndPoint { server_names, port })
            } else {
                EndPointEntry::Https(HttpsEndPoint {
                    server_names,
                    port,
                    ssl_cert_path: Some(format!("/etc/ssl/app{i}/fullchain.pem").into()),
                    ssl_cert_key_path: Some(format!("/etc/ssl/app{i}/privkey.pem").into()),
                    letsencrypt_www_dir: "/var/www/letsencrypt".into(),
                })
            }
        })
        .collect();
    let ctx = serde_json::to_value(NginxContext {
        health_check: Some(HealthCheck {
            incoming_path: "/health-check".into(),
            outgoing_path: "/health".into(),
            outgoing_port: 8000,
        }),
        end_points,
        http_port: 80,
        https_port: 443,
    })
    .unwrap();

    let runs = 2000;
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let start = Instant::now();
        let a = crate::release::template::render_str(DEFAULT_TEMPLATE, &ctx, &mut |_| Ok(None))
            .unwrap();
        old.push(start.elapsed());
        let start = Instant::now();
        let b = super::render_str(DEFAULT_TEMPLATE, &ctx, &mut |_| Ok(None)).unwrap();
        new.push(start.elapsed());
        assert_eq!((a.text, a.warnings), (b.text, b.warnings));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "nginx template, median of {runs} runs: old {:?}, new {:?}",
        median(&mut old),
        median(&mut new)
    );
}
