//! Mustache templates: the official mustache spec, rendered over
//! a JSON context, plus what a deployment tool needs around it: partials as
//! files beside the template, a warning for every name without a value, and
//! errors (with line numbers) instead of silently misrendering bad templates.
//!
//! Beyond the spec: `""` and `{}` are falsy like `null`, `false` and `[]`;
//! numbers (even 0) are truthy and render as their JSON text; `false`,
//! `null`, lists and objects render empty.

mod parse;
mod render;

use std::path::{Component, Path};

use anyhow::{anyhow, bail, Result};

use render::{render, Warning};

/// Bounds on the work of one rendering, so that a hostile template or
/// context fails fast instead of running for minutes or filling memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes visited, section items included.
    pub max_steps: u64,
    /// Bytes of output.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 10_000_000,
            max_bytes: 64 << 20,
        }
    }
}

/// The result of rendering: the text, plus one warning per name that had no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}

/// Render `template` with `context`, within the default [`Limits`]. `load_partial(name)`
/// returns the text of partial `name` (None = missing partial, which renders as empty per
/// the spec).
///
/// Warnings read e.g. `no value for 'ports.http'`, `no value for 'x' (in partial 'p')`,
/// `partial 'p' not found`.
///
/// # Errors
///
/// A template or partial that does not parse (unclosed or mismatched section, unclosed tag,
/// bad set-delimiters tag, empty tag), an error from `load_partial`, or sections and partials
/// nested too deep (e.g. a partial including itself without end).
pub fn render_str(
    template: &str,
    context: &serde_json::Value,
    load_partial: &mut dyn FnMut(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Rendered> {
    let out = render(template, context, load_partial, &Limits::default())?;
    let warnings = out.warnings.iter().map(|w| match w {
        Warning::NoValue { name, partial } => no_value(name, partial.as_deref()),
        Warning::NoPartial(name) => format!("partial '{name}' not found"),
    });
    Ok(Rendered {
        text: out.text,
        warnings: warnings.collect(),
    })
}

/// Render the template file at `path` within `limits`. Partials `{{> name}}` are files relative to the
/// directory of `path` (name may contain `/`); a partial name that is absolute or contains a `..`
/// component is an error naming the template file and the partial. A missing partial file renders empty and adds a warning.
/// Errors (unreadable file, template that does not parse) name the file: e.g. `template /x/y.tpl: unclosed section 'a' (opened on line 1)`.
/// Warnings are full sentences naming the template file and the name, e.g. `template /x/y.tpl: no value for 'ports.http'`.
///
/// # Errors
///
/// Those of [`render_str`], and an unreadable template or partial file, or a partial name
/// leaving the template's directory; all prefixed with `template <path>: `.
pub fn render_file(
    path: &Path,
    context: &serde_json::Value,
    limits: &Limits,
) -> anyhow::Result<Rendered> {
    let shown = path.display();
    let template = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("template {shown}: cannot read it: {e}"))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut load = |name: &str| -> Result<Option<String>> {
        let rel = Path::new(name);
        // Partials come from the release itself: keep them inside its tree.
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("the name must be a relative path without '..'");
        }
        let file = dir.join(rel);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => bail!("cannot read {}: {e}", file.display()),
        }
    };
    let out = render(&template, context, &mut load, limits)
        .map_err(|e| anyhow!("template {shown}: {e:#}"))?;
    let warnings = out.warnings.iter().map(|w| match w {
        Warning::NoValue { name, partial } => {
            format!("template {shown}: {}", no_value(name, partial.as_deref()))
        }
        Warning::NoPartial(name) => format!(
            "template {shown}: partial '{name}' not found (no file {}), it renders empty",
            dir.join(name).display()
        ),
    });
    Ok(Rendered {
        text: out.text,
        warnings: warnings.collect(),
    })
}

/// Whether `template` parses, without rendering it: for checking a release
/// before it is published.
///
/// # Errors
///
/// Why it does not parse, with a line number, as [`render_str`] says it.
pub fn check(template: &str) -> Result<()> {
    parse::parse(template).map(|_| ())
}

fn no_value(name: &str, partial: Option<&str>) -> String {
    match partial {
        None => format!("no value for '{name}'"),
        Some(p) => format!("no value for '{name}' (in partial '{p}')"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use serde_json::{json, Value};

    fn no_partials(_: &str) -> Result<Option<String>> {
        Ok(None)
    }

    fn render_plain(template: &str, ctx: &Value) -> Rendered {
        render_str(template, ctx, &mut no_partials).unwrap()
    }

    fn with_partials(template: &str, ctx: &Value, partials: &[(&str, &str)]) -> Rendered {
        let map: HashMap<String, String> = partials
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        render_str(template, ctx, &mut |n| Ok(map.get(n).cloned())).unwrap()
    }

    /// A release directory with the given files; returns (dir, path of the first).
    fn files(entries: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in entries {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let first = dir.path().join(entries[0].0);
        (dir, first)
    }

    #[test]
    fn partials_from_files() {
        let (_dir, main) = files(&[
            ("nginx.conf.tpl", "server {\n  {{> listen}}\n}\n"),
            ("listen", "listen {{port}} default;\n"),
        ]);
        let out = render_file(&main, &json!({"port": 8000}), &Limits::default()).unwrap();
        assert_eq!(out.text, "server {\n  listen 8000 default;\n}\n");
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn nested_partials_in_subdirectories() {
        let (_dir, main) = files(&[
            ("main.tpl", "A\n    {{> parts/outer}}\nZ\n"),
            ("parts/outer", "outer {{name}} {\n  {{> parts/inner}}\n}\n"),
            ("parts/inner", "inner {{name}};\nsecond {{name}};\n"),
        ]);
        let out = render_file(&main, &json!({"name": "x"}), &Limits::default()).unwrap();
        assert_eq!(
            out.text,
            "A\n    outer x {\n      inner x;\n      second x;\n    }\nZ\n"
        );
    }

    #[test]
    fn partial_used_inline_keeps_its_line() {
        let (_dir, main) = files(&[
            ("main.tpl", "a\n  x {{> p}} y\n  {{>p}}!\n"),
            ("p", "P{{a}}Q"),
        ]);
        let out = render_file(&main, &json!({"a": 1}), &Limits::default()).unwrap();
        assert_eq!(out.text, "a\n  x P1Q y\n  P1Q!\n");
    }

    #[test]
    fn recursive_partial_terminates_with_the_data() {
        let tree = json!({"name": "root", "kids": [
            {"name": "a", "kids": [{"name": "a1", "kids": []}]},
            {"name": "b", "kids": []}
        ]});
        let node = "- {{name}}\n{{#kids}}\n  {{> node}}\n{{/kids}}\n";
        let out = with_partials("{{> node}}", &tree, &[("node", node)]);
        assert_eq!(out.text, "- root\n  - a\n    - a1\n  - b\n");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn endless_partial_recursion_is_an_error() {
        let err = render_str("{{> me}}", &json!({"on": true}), &mut |_| {
            Ok(Some("x{{#on}}{{> me}}{{/on}}".to_string()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("include itself"), "{err}");
    }

    #[test]
    fn deep_recursion_within_the_limits_renders() {
        let mut tree = json!({});
        for i in 0..90 {
            tree = json!({"n": i, "c": tree});
        }
        let node = "{{n}}\n{{#c}}\n{{> node}}\n{{/c}}\n";
        // Test threads have a 2 MiB stack, like other spawned threads.
        let out = with_partials("{{> node}}", &tree, &[("node", node)]);
        assert_eq!(out.text.lines().count(), 90);
        let too_deep = "{{#a}}".repeat(101) + &"{{/a}}".repeat(101);
        let err = render_str(&too_deep, &json!({}), &mut no_partials).unwrap_err();
        assert!(
            err.to_string().contains("nested more than 100 deep"),
            "{err}"
        );
    }

    #[test]
    fn missing_partial_renders_empty_and_warns() {
        let (dir, main) = files(&[("main.tpl", "a\n{{> nope}}\nb {{> sub/gone}}.\n")]);
        let out = render_file(&main, &json!({}), &Limits::default()).unwrap();
        assert_eq!(out.text, "a\nb .\n");
        let shown = main.display();
        assert_eq!(
            out.warnings,
            vec![
                format!(
                    "template {shown}: partial 'nope' not found (no file {}), it renders empty",
                    dir.path().join("nope").display()
                ),
                format!(
                    "template {shown}: partial 'sub/gone' not found (no file {}), it renders empty",
                    dir.path().join("sub/gone").display()
                ),
            ]
        );
    }

    #[test]
    fn partial_names_escaping_the_directory_are_refused() {
        for name in ["../secret", "a/../../b", "/etc/passwd"] {
            let (_dir, main) = files(&[("main.tpl", &format!("x {{{{> {name}}}}}\n"))]);
            let err = render_file(&main, &json!({}), &Limits::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("template {}: ", main.display())),
                "{err}"
            );
            assert!(err.contains(&format!("partial '{name}'")), "{err}");
        }
    }

    #[test]
    fn unreadable_template_names_the_file() {
        let err = render_file(
            Path::new("/nonexistent/t.tpl"),
            &json!({}),
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("template /nonexistent/t.tpl: cannot read it"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_name_the_file() {
        let cases = [
            ("{{#a}}\nx\n", "unclosed section 'a' (opened on line 1)"),
            ("x\n{{/b}}", "line 2: unexpected closing tag 'b': no section is open"),
            (
                "{{#a}}{{/b}}",
                "line 1: unexpected closing tag 'b': section 'a' (opened on line 1) must be closed first",
            ),
            ("{{^a}}{{/b}}", "unexpected closing tag 'b'"),
            ("a {{b", "line 1: unclosed tag"),
            ("{{{b}}", "line 1: unclosed tag"),
            ("{{=}}", "bad set-delimiters tag"),
            ("{{=<% %>}}", "bad set-delimiters tag"),
            ("{{=«« »»=}}", "bad set-delimiters tag"),
            ("{{}}", "empty tag"),
        ];
        for (text, expected) in cases {
            let (_dir, main) = files(&[("t.tpl", text)]);
            let err = render_file(&main, &json!({}), &Limits::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("template {}: ", main.display()))
                    && err.contains(expected),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn parse_errors_in_partials_name_the_partial() {
        let (_dir, main) = files(&[("t.tpl", "{{#x}}{{> p}}{{/x}}"), ("p", "{{#a}}")]);
        let err = render_file(&main, &json!({}), &Limits::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "template {}: partial 'p': unclosed section 'a' (opened on line 1)",
                main.display()
            )
        );
    }

    #[test]
    fn warnings_for_missing_names() {
        let (_dir, main) = files(&[(
            "t.tpl",
            "{{host}}:{{ports.http}} {{ports.https}} {{nope}} {{host}} {{nope}}\n",
        )]);
        let out = render_file(
            &main,
            &json!({"host": "h", "ports": {"http": 80}}),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.text, "h:80   h \n");
        let shown = main.display();
        assert_eq!(
            out.warnings,
            vec![
                format!("template {shown}: no value for 'ports.https'"),
                format!("template {shown}: no value for 'nope'"),
            ]
        );
    }

    #[test]
    fn warnings_inside_sections_and_partials() {
        let ctx = json!({"items": [{"a": 1}, {"a": 2, "b": 3}], "off": false, "obj": {"c": 1}});
        let out = with_partials(
            "{{#items}}{{a}}{{b}}{{> p}}{{/items}}{{#off}}{{x}}{{/off}}{{#obj}}{{c}}{{d}}{{/obj}}{{#gone}}{{y}}{{/gone}}{{^gone}}{{z}}{{/gone}}",
            &ctx,
            &[("p", "{{q}}")],
        );
        assert_eq!(out.text, "1231");
        assert_eq!(
            out.warnings,
            vec![
                "no value for 'b'",
                "no value for 'q' (in partial 'p')",
                "no value for 'd'",
                "no value for 'gone'",
                "no value for 'z'",
            ]
        );
    }

    #[test]
    fn no_warnings_for_null_false_or_present_names() {
        let ctx = json!({"n": null, "f": false, "s": "", "z": 0, "l": [], "o": {"k": null}, "list": [1, 2]});
        let out = render_plain(
            "{{n}}{{f}}{{s}}{{z}}{{l}}{{o.k}}{{#list}}{{.}}{{/list}}{{^n}}{{f}}{{/n}}{{#o}}{{k}}{{n}}{{/o}}",
            &ctx,
        );
        assert_eq!(out.text, "012");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn dotted_names_resolve_first_part_up_the_stack() {
        let ctx = json!({"a": {"b": {"c": "deep"}}, "x": {"a": {}}});
        let out = render_plain("{{#x}}[{{a.b.c}}]{{/x}}{{a.b.c}}", &ctx);
        // Inside x, `a` is x.a (which has no b): the chain is broken.
        assert_eq!(out.text, "[]deep");
        assert_eq!(out.warnings, vec!["no value for 'a.b.c'"]);
    }

    #[test]
    fn integers_render_without_decimal_point() {
        let ctx = json!({"port": 8000, "neg": -3, "big": u64::MAX, "f": 1.5, "one": 1.0, "e": 1e100, "tiny": 1e-7});
        let out = render_plain(
            "{{port}} {{neg}} {{big}} {{f}} {{one}} {{e}} {{tiny}}",
            &ctx,
        );
        assert_eq!(out.text, "8000 -3 18446744073709551615 1.5 1.0 1e+100 1e-7");
    }

    #[test]
    fn strings_survive_intact() {
        let nasty = "q\"uo'te \\back\\slash\nnew\ttab\r\nCRLF é ü 日本 😀 \u{0} \u{7f} \u{85} \u{2028} \u{feff} \u{fffe} {{x}} # - : ? &*!|>'%@`";
        let ctx =
            json!({"s": nasty, "k.dot": "D", "with space": "S", "e": {}, "l": [[1, [2]], {}]});
        let out = render_plain(
            "{{{s}}}|{{with space}}|{{#e}}x{{/e}}{{^e}}empty{{/e}}",
            &ctx,
        );
        assert_eq!(out.text, format!("{nasty}|S|empty"));
        // A dotted key cannot be reached by name (the spec splits on dots).
        let out = render_plain("{{k.dot}}", &ctx);
        assert_eq!(out.text, "");
    }

    #[test]
    fn deep_and_large_contexts() {
        let mut deep = json!("bottom");
        for _ in 0..1000 {
            deep = json!({ "a": deep });
        }
        let ctx = json!({ "d": deep, "k".repeat(3000): "long" });
        let path = format!("d{}", ".a".repeat(1000));
        let out = render_plain(
            &format!("{{{{{path}}}}} {{{{{}}}}}", "k".repeat(3000)),
            &ctx,
        );
        assert_eq!(out.text, "bottom long");

        // Nothing recurses over the data itself; walking into it through a
        // recursive partial stops at the nesting limit.
        let mut very_deep = json!(1);
        for _ in 0..100_000 {
            very_deep = Value::Object([("c".to_string(), very_deep)].into_iter().collect());
        }
        assert_eq!(render_plain("x", &very_deep).text, "x");
        let err = render_str("{{> node}}", &very_deep, &mut |_| {
            Ok(Some("{{#c}}{{> node}}{{/c}}".to_string()))
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("nested more than 200 deep"),
            "{err}"
        );
        std::mem::forget(very_deep); // dropping it recursively would overflow

        let big: serde_json::Map<String, Value> = (0..20_000)
            .map(|i| {
                (
                    format!("key{i}"),
                    json!({"v": i, "s": format!("value {i}")}),
                )
            })
            .collect();
        let out = render_plain("{{key19999.v}} {{key7.s}}", &Value::Object(big));
        assert_eq!(out.text, "19999 value 7");
    }

    #[test]
    fn nested_sections_over_a_long_list_stop_at_the_step_limit() {
        // 100^5 items to visit, each rendering nothing: minutes of work.
        let list: Vec<Value> = (0..100).map(|i| json!(i)).collect();
        let template = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}";
        let err = render(
            template,
            &json!({ "l": list }),
            &mut no_partials,
            &Limits::default(),
        )
        .err()
        .expect("the step limit stops it")
        .to_string();
        assert!(
            err.contains("more than 10000000 steps (limits.maxTemplateSteps)"),
            "{err}"
        );
    }

    #[test]
    fn output_stops_at_the_size_limit() {
        let limits = Limits {
            max_steps: u64::MAX,
            max_bytes: 1000,
        };
        let ctx = json!({"l": (0..200).collect::<Vec<_>>(), "x": "0123456789"});
        let err = render("{{#l}}{{x}}{{/l}}", &ctx, &mut no_partials, &limits)
            .err()
            .expect("the size limit stops it")
            .to_string();
        assert!(
            err.contains("past 1000 bytes (limits.maxRenderedBytes)"),
            "{err}"
        );
        assert!(render(
            "{{#l}}{{x}}{{/l}}",
            &ctx,
            &mut no_partials,
            &Limits::default()
        )
        .is_ok());
    }

    #[test]
    fn a_missing_name_in_a_loop_warns_once() {
        let ctx = json!({"l": (0..1000).collect::<Vec<_>>()});
        let out = render_plain("{{#l}}{{nope}}{{/l}}", &ctx);
        assert_eq!(out.warnings, ["no value for 'nope'"]);
    }

    #[test]
    fn the_implicit_iterator_is_the_current_item() {
        // Where ribboncurls went wrong: every item of a list is visited, a
        // section's scalar value is the current item, and `.` never means
        // the key named like the section.
        let ctx = json!({"l": [[false, 1, ""]], "o": {"k": 1}, "s": "S", "b": {"b": 2}});
        let out = render_plain(
            "{{#l}}{{#.}}[{{.}}]{{/.}}{{^.}}none{{/.}}{{/l}} {{#o}}{{#s}}{{.}}{{/s}}{{/o}} {{#b}}<{{.}}>{{/b}}",
            &ctx,
        );
        assert_eq!(out.text, "[][1][] S <>");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn html_escaping() {
        let out = render_plain("{{x}}|{{{x}}}|{{& x}}", &json!({"x": "<a href=\"u\">&'"}));
        assert_eq!(
            out.text,
            "&lt;a href=&quot;u&quot;&gt;&amp;&#39;|<a href=\"u\">&'|<a href=\"u\">&'"
        );
    }

    #[test]
    fn standalone_lines_follow_the_spec() {
        let ctx = json!({"a": true, "b": "B"});
        // Trailing blanks after a standalone tag, a leading blank line,
        // and blanks before a section tag that is not standalone.
        assert_eq!(render_plain("{{#a}}  \nx\n{{/a}}\t\n", &ctx).text, "x\n");
        assert_eq!(render_plain("\n{{#a}}\nx\n{{/a}}\n", &ctx).text, "\nx\n");
        assert_eq!(
            render_plain("{{b}}  {{#a}}\nx\n{{/a}}\n", &ctx).text,
            "B  \nx\n"
        );
        assert_eq!(
            render_plain("  {{#a}}\r\n  x\r\n  {{/a}}\r\n", &ctx).text,
            "  x\r\n"
        );
        // A partial's first line can be standalone too.
        let out = with_partials("a\n{{> p}}\nb", &ctx, &[("p", "  {{! c }}\nX\n")]);
        assert_eq!(out.text, "a\nX\nb");
    }

    #[test]
    fn line_endings_of_partials_do_not_depend_on_the_template() {
        let ctx = json!({"t": true});
        // An LF partial, from templates with no line break and with CRLF ones.
        let p = "a\n{{#t}}\nx\n{{/t}}\n";
        assert_eq!(with_partials("{{>p}}", &ctx, &[("p", p)]).text, "a\nx\n");
        assert_eq!(
            with_partials("1\r\n{{>p}}\r\n2 {{>p}}\r\n", &ctx, &[("p", p)]).text,
            "1\r\na\nx\n2 a\nx\n\r\n"
        );
        // A CRLF partial from an LF template.
        let p = "a\r\n{{#t}}\r\nx\r\n{{/t}}\r\n";
        assert_eq!(
            with_partials("1\n  {{>p}}\n", &ctx, &[("p", p)]).text,
            "1\n  a\r\n  x\r\n"
        );
    }

    #[test]
    fn custom_delimiters_with_partials() {
        let out = with_partials(
            "{{=<% %>=}}\n<%#a%>\n  <%> p%>\n<%/a%>\n",
            &json!({"a": [1, 2]}),
            &[("p", "{{.}} {{.}}\n")],
        );
        assert_eq!(out.text, "  1 1\n  2 2\n");
    }
}
