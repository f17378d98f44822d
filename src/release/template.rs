//! Mustache rendering for release templates.
//!
//! The rendering itself is done by the `ribboncurls` crate, which passes the
//! official mustache spec tests. This module adds what a deployment tool needs
//! around it, and works around the places where ribboncurls goes wrong on input
//! outside the spec tests:
//!
//! * **Partials.** ribboncurls wants every partial up front, so a small tag
//!   scanner ([`scan`]) finds the `{{> name}}` tags, and each partial is loaded
//!   once (recursively) before rendering.
//! * **Warnings.** The scanned templates are walked over the context with the
//!   spec's name resolution rules, and every name that resolves to nothing
//!   gives a warning (a `null` or `false` value is present: no warning).
//! * **Errors.** ribboncurls silently drops an unclosed section or a stray
//!   closing tag, and panics on some malformed set-delimiter tags; the scanner
//!   rejects these with a clear message first.
//! * **Whitespace.** ribboncurls mishandles the spec's "standalone line" rules
//!   in several cases (text after a tag on an indented partial line is dropped,
//!   trailing blanks after a standalone tag, a template starting with a blank
//!   line, ...). Each template is therefore rewritten ([`normalize`]) into an
//!   equivalent canonical form on which ribboncurls is known to be right:
//!   standalone lines lose their surrounding blanks, partial indentation is
//!   applied here (to a copy of the partial, registered under a generated
//!   name), and an invisible empty tag (`{{ }}`) separates things ribboncurls
//!   would otherwise misread.
//! * **Data.** ribboncurls reads its data as YAML and, when that fails (a key
//!   over 1024 bytes, nesting deeper than 128, a character YAML does not allow
//!   such as U+007F), silently renders with no data at all. The context is
//!   therefore written here as pure-ASCII YAML with explicit keys, checked to
//!   parse, and numbers are passed as their JSON text (so `8000` is never
//!   `8000.0`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Component, Path};
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// The result of rendering: the text, plus one warning per name that had no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}

/// Render `template` with `context`. `load_partial(name)` returns the text of partial `name`
/// (None = missing partial, which renders as empty per the spec).
///
/// Warnings read e.g. `no value for 'ports.http'`, `no value for 'x' (in partial 'p')`,
/// `partial 'p' not found`.
///
/// # Errors
///
/// A template or partial that does not parse (unclosed or mismatched section, unclosed tag,
/// bad set-delimiters tag, empty tag), an error from `load_partial`, sections and partials
/// nested too deep (e.g. a partial including itself without end), or a context nested more
/// than 128 levels deep.
pub fn render_str(
    template: &str,
    context: &serde_json::Value,
    load_partial: &mut dyn FnMut(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Rendered> {
    let out = render(template, context, load_partial)?;
    let warnings = out.warnings.iter().map(|w| match w {
        Warning::NoValue { name, partial } => no_value(name, partial.as_deref()),
        Warning::NoPartial(name) => format!("partial '{name}' not found"),
    });
    Ok(Rendered {
        text: out.text,
        warnings: dedup(warnings),
    })
}

/// Render the template file at `path`. Partials `{{> name}}` are files relative to the
/// directory of `path` (name may contain `/`); a partial name that is absolute or contains a `..`
/// component is an error naming the template file and the partial. A missing partial file renders empty and adds a warning.
/// Errors (unreadable file, template that does not parse) name the file: e.g. `template /x/y.tpl: missing end tag`.
/// Warnings are full sentences naming the template file and the name, e.g. `template /x/y.tpl: no value for 'ports.http'`.
///
/// # Errors
///
/// Those of [`render_str`], and an unreadable template or partial file, or a partial name
/// leaving the template's directory; all prefixed with `template <path>: `.
pub fn render_file(path: &Path, context: &serde_json::Value) -> anyhow::Result<Rendered> {
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
    let out =
        render(&template, context, &mut load).map_err(|e| anyhow!("template {shown}: {e:#}"))?;
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
        warnings: dedup(warnings),
    })
}

fn no_value(name: &str, partial: Option<&str>) -> String {
    match partial {
        None => format!("no value for '{name}'"),
        Some(p) => format!("no value for '{name}' (in partial '{p}')"),
    }
}

/// Drops repeated warnings, keeping the first-seen order.
fn dedup(warnings: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    warnings.filter(|w| seen.insert(w.clone())).collect()
}

// ribboncurls recurses once per section and partial level it renders, and
// aborts the process on a stack overflow (400 nested sections fit in a 2 MiB
// thread stack in a debug build, 800 do not). Hence these bounds:
/// How deeply sections may nest inside one template.
const MAX_SECTION_DEPTH: usize = 100;
/// How deeply sections and partials may nest while rendering; this also stops
/// a partial that includes itself without end.
const MAX_NESTING: usize = 200;
/// ribboncurls reads its data with `serde_yaml`, which refuses deeper nesting.
const MAX_CONTEXT_DEPTH: usize = 128;

// ---------------------------------------------------------------------------
// Rendering pipeline
// ---------------------------------------------------------------------------

/// A problem worth telling the user about, formatted by the callers.
enum Warning {
    NoValue {
        name: String,
        partial: Option<String>,
    },
    NoPartial(String),
}

struct Output {
    text: String,
    warnings: Vec<Warning>,
}

fn render(
    template: &str,
    context: &Value,
    load: &mut dyn FnMut(&str) -> Result<Option<String>>,
) -> Result<Output> {
    let toks = scan(template)?;
    let uses_partials = toks.iter().any(|t| t.kind == Some(Kind::Partial));

    let mut lib = Library {
        load,
        sources: HashMap::new(),
        missing: Vec::new(),
        variants: HashMap::new(),
        slots: Vec::new(),
    };
    lib.load_all(&toks)?;

    // ribboncurls picks the line ending of every template (partials too) from
    // the top template, and picks CRLF when that has no bare LF. Rewritten
    // partial tags always contain a bare LF (see `normalize`), so any template
    // using partials is read in LF mode, which also handles CRLF text.
    let mode = if uses_partials || template.matches("\r\n").count() < template.matches('\n').count()
    {
        Mode::Lf
    } else {
        Mode::Crlf
    };
    let (text, nodes) = normalize(template, &toks, mode, true, &mut |name, indent| {
        lib.alloc(name, indent)
    });

    let mut walker = Walker {
        lib: &mut lib,
        warnings: Vec::new(),
    };
    let mut stack = vec![context];
    walker.walk(&nodes, &mut stack, 0, None)?;
    let mut warnings: Vec<Warning> = walker.warnings;
    lib.prepare_unreached()?;

    let mut all = lib
        .missing
        .iter()
        .map(|n| Warning::NoPartial(n.clone()))
        .collect::<Vec<_>>();
    all.append(&mut warnings);

    let partials = lib.partials_yaml()?;
    let data = context_yaml(context)?;
    let text =
        ribboncurls::render(&text, &data, partials.as_deref()).map_err(|e| anyhow!("{e}"))?;
    Ok(Output {
        text,
        warnings: all,
    })
}

// ---------------------------------------------------------------------------
// Scanner
// ---------------------------------------------------------------------------

/// The tag kinds (a text token has no kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `{{x}}`
    Escaped,
    /// `{{{x}}}` or `{{& x}}`
    Unescaped,
    /// `{{#x}}`
    Section,
    /// `{{^x}}`
    Inverted,
    /// `{{/x}}`
    Close,
    /// `{{> x}}`
    Partial,
    /// `{{! ...}}`
    Comment,
    /// `{{=<% %>=}}`
    Delims,
}

impl Kind {
    /// Whether a tag of this kind can stand alone on a line (and then the line
    /// disappears from the output).
    fn can_stand_alone(self) -> bool {
        !matches!(self, Kind::Escaped | Kind::Unescaped)
    }
}

/// One token of a template: a run of text, or a tag.
#[derive(Debug, Clone)]
struct Tok {
    /// `None` for text.
    kind: Option<Kind>,
    /// Byte range in the template (a tag's range includes its delimiters).
    start: usize,
    end: usize,
    /// The tag's name, trimmed ("" for text, comments and set-delimiters).
    name: String,
    /// The delimiters in force at the start of the token.
    open: Rc<str>,
    close: Rc<str>,
}

fn line_of(src: &str, pos: usize) -> usize {
    src[..pos].matches('\n').count() + 1
}

/// Splits a template into text and tags exactly as ribboncurls' tokenizer
/// does (so that rewriting the tokens cannot change how it reads them), and
/// rejects what ribboncurls would silently misrender or panic on.
fn scan(src: &str) -> Result<Vec<Tok>> {
    let mut open: Rc<str> = Rc::from("{{");
    let mut close: Rc<str> = Rc::from("}}");
    let mut toks = Vec::new();
    let mut sections: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        let line = || line_of(src, i);
        if !rest.starts_with(&*open) {
            let n = rest.find(&*open).unwrap_or(rest.len());
            toks.push(Tok {
                kind: None,
                start: i,
                end: i + n,
                name: String::new(),
                open: open.clone(),
                close: close.clone(),
            });
            i += n;
            continue;
        }
        // Delimiters are ASCII (checked when set), so slicing one byte is safe.
        let triple_open = format!("{open}{}", &open[..1]);
        let (kind, name, end) = if rest.starts_with(&triple_open) {
            let triple_close = format!("{close}{}", &close[..1]);
            match rest.find(&triple_close) {
                Some(e) if e >= triple_open.len() => (
                    Kind::Unescaped,
                    rest[triple_open.len()..e].trim(),
                    i + e + triple_close.len(),
                ),
                _ => bail!(
                    "line {}: unclosed tag: no '{triple_close}' after '{triple_open}'",
                    line()
                ),
            }
        } else {
            let Some(e) = rest[open.len()..].find(&*close) else {
                bail!("line {}: unclosed tag: no '{close}' after '{open}'", line());
            };
            let content = &rest[open.len()..open.len() + e];
            let end = i + open.len() + e + close.len();
            // As in ribboncurls, the sigil must directly follow the delimiter.
            let (kind, name) = match content.chars().next() {
                Some('&') => (Kind::Unescaped, content[1..].trim()),
                Some('#') => (Kind::Section, content[1..].trim()),
                Some('^') => (Kind::Inverted, content[1..].trim()),
                Some('/') => (Kind::Close, content[1..].trim()),
                Some('>') => (Kind::Partial, content[1..].trim()),
                Some('!') => (Kind::Comment, ""),
                Some('=') => (Kind::Delims, ""),
                _ => (Kind::Escaped, content.trim()),
            };
            if kind == Kind::Delims {
                let (new_open, new_close) = parse_delims(content)
                    .ok_or_else(|| anyhow!("line {}: bad set-delimiters tag '{open}{content}{close}' (expected e.g. '{{{{=<% %>=}}}}', with two delimiters of visible ASCII characters other than '=')", line()))?;
                toks.push(Tok {
                    kind: Some(kind),
                    start: i,
                    end,
                    name: String::new(),
                    open: open.clone(),
                    close: close.clone(),
                });
                open = Rc::from(new_open);
                close = Rc::from(new_close);
                i = end;
                continue;
            }
            (kind, name, end)
        };
        if name.is_empty() && !matches!(kind, Kind::Comment) {
            bail!("line {}: empty tag '{}'", line(), &src[i..end]);
        }
        match kind {
            Kind::Section | Kind::Inverted => {
                if sections.len() >= MAX_SECTION_DEPTH {
                    bail!(
                        "line {}: sections nested more than {MAX_SECTION_DEPTH} deep",
                        line()
                    );
                }
                sections.push((name.to_string(), i));
            }
            Kind::Close => match sections.pop() {
                Some((open_name, _)) if open_name == name => {}
                Some((open_name, at)) => bail!(
                    "line {}: unexpected closing tag '{name}': section '{open_name}' (opened on line {}) must be closed first",
                    line(),
                    line_of(src, at)
                ),
                None => bail!(
                    "line {}: unexpected closing tag '{name}': no section is open",
                    line()
                ),
            },
            _ => {}
        }
        toks.push(Tok {
            kind: Some(kind),
            start: i,
            end,
            name: name.to_string(),
            open: open.clone(),
            close: close.clone(),
        });
        i = end;
    }
    if let Some((name, at)) = sections.pop() {
        bail!(
            "unclosed section '{name}' (opened on line {})",
            line_of(src, at)
        );
    }
    Ok(toks)
}

/// The new delimiters of a set-delimiter tag's content (`=<% %>=`). Stricter
/// than ribboncurls, which panics on `{{=}}` or non-ASCII delimiters and
/// takes the text between the first and last space as-is.
fn parse_delims(content: &str) -> Option<(String, String)> {
    let inner = content.strip_prefix('=')?.strip_suffix('=')?;
    let parts: Vec<&str> = inner.split(' ').filter(|p| !p.is_empty()).collect();
    let ok = |d: &str| d.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
    match parts[..] {
        [o, c] if ok(o) && ok(c) => Some((o.to_string(), c.to_string())),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Rewriting into a form ribboncurls renders right
// ---------------------------------------------------------------------------

/// The line ending ribboncurls will use for its standalone-line rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lf,
    Crlf,
}

/// The structure of a template, for the warnings walk.
#[derive(Debug)]
enum Node {
    Var(String),
    Section {
        name: String,
        inverted: bool,
        body: Vec<Node>,
    },
    /// A partial, by the id of its (indented) copy in the [`Library`].
    Partial(usize),
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b == b'\t')
}

/// For a tag that may stand alone: the blanks before it on its line, if the
/// line holds nothing else before it.
fn blanks_before<'a>(src: &'a str, toks: &[Tok], k: usize) -> Option<&'a str> {
    if k == 0 {
        return Some("");
    }
    let prev = &toks[k - 1];
    if prev.kind.is_some() {
        return None;
    }
    let text = &src[prev.start..prev.end];
    let tail = match text.rfind('\n') {
        Some(p) => &text[p + 1..],
        // No line break: only the template's first line starts here.
        None if k == 1 => text,
        None => return None,
    };
    is_blank(tail).then_some(tail)
}

/// Whether only blanks follow a tag up to the end of its line.
fn blank_after(src: &str, toks: &[Tok], k: usize) -> bool {
    let Some(next) = toks.get(k + 1) else {
        return true;
    };
    if next.kind.is_some() {
        return false;
    }
    let text = &src[next.start..next.end];
    match text.find('\n') {
        Some(p) => is_blank(text[..p].strip_suffix('\r').unwrap_or(&text[..p])),
        None => k + 2 == toks.len() && is_blank(text),
    }
}

/// The empty tag `{{ }}`: ribboncurls renders it as nothing, and it is never
/// standalone, so it separates tokens whose adjacency ribboncurls misreads.
fn breaker(open: &str, close: &str) -> String {
    format!("{open} {close}")
}

/// Rewrites a (scanned) template into the canonical form, and returns it with
/// the template's structure. Standalone lines (a line holding only blanks and
/// one section, comment, partial or set-delimiter tag) are what ribboncurls
/// gets wrong, so:
///
/// * their leading and trailing blanks are removed (they are not rendered
///   anyway), leaving `\n{{#x}}\n` which ribboncurls reads right;
/// * a standalone partial becomes a reference to a copy of the partial with
///   every line indented as the spec asks; `alloc(name, indentation)` gives
///   that copy's id (its generated name is `p<id>`);
/// * in templates using partials, a line starting with blanks starts with
///   `{{ }}` instead, because ribboncurls would otherwise take those blanks as
///   a partial indentation and mangle the partial;
/// * `{{ }}` also goes between blanks and a section tag that is not
///   standalone, and at the start of a top template that starts with a line
///   break, two places where ribboncurls would drop text.
///
/// Every partial tag is written with a line break inside (`{{>p1\n}}`), which
/// is harmless but makes ribboncurls choose LF mode (see [`render`]).
fn normalize(
    src: &str,
    toks: &[Tok],
    mode: Mode,
    is_top: bool,
    alloc: &mut dyn FnMut(&str, &str) -> usize,
) -> (String, Vec<Node>) {
    let standalone: Vec<Option<&str>> = (0..toks.len())
        .map(|k| match toks[k].kind {
            Some(kind) if kind.can_stand_alone() && blank_after(src, toks, k) => {
                blanks_before(src, toks, k)
            }
            _ => None,
        })
        .collect();
    let uses_partials = toks.iter().any(|t| t.kind == Some(Kind::Partial));

    let mut out = String::with_capacity(src.len() + src.len() / 8);
    // Where the current run of plain text started in `out`.
    let mut run_start = 0;
    // Section bodies being built, innermost last.
    let mut stack: Vec<(String, bool, Vec<Node>)> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();

    for (k, tok) in toks.iter().enumerate() {
        let Some(kind) = tok.kind else {
            let mut text = &src[tok.start..tok.end];
            if k > 0 && standalone[k - 1].is_some() {
                // Drop the blanks ending the standalone line before; in LF
                // mode its CR too, so that the LF right after the tag is seen.
                text = match text.find('\n') {
                    Some(p) if mode == Mode::Crlf && text[..p].ends_with('\r') => &text[p - 1..],
                    Some(p) => &text[p..],
                    None => "",
                };
            }
            if k + 1 < toks.len() && standalone[k + 1].is_some() {
                // Drop the blanks that start the standalone line after.
                text = match text.rfind('\n') {
                    Some(p) => &text[..=p],
                    None => "",
                };
            }
            if uses_partials {
                let mut rest = text;
                while let Some(p) = rest.find('\n') {
                    out.push_str(&rest[..=p]);
                    rest = &rest[p + 1..];
                    if rest.starts_with([' ', '\t']) {
                        out.push_str(&breaker(&tok.open, &tok.close));
                        run_start = out.len();
                    }
                }
                out.push_str(rest);
            } else {
                out.push_str(text);
            }
            continue;
        };

        if matches!(kind, Kind::Section | Kind::Inverted)
            && standalone[k].is_none()
            && out.len() > run_start
            && is_blank(&out[run_start..])
        {
            out.push_str(&breaker(&tok.open, &tok.close));
        }
        let partial =
            (kind == Kind::Partial).then(|| alloc(&tok.name, standalone[k].unwrap_or("")));
        match partial {
            Some(id) => {
                let _ = write!(out, "{}>p{id}\n{}", tok.open, tok.close);
            }
            None => out.push_str(&src[tok.start..tok.end]),
        }
        run_start = out.len();

        let node = match kind {
            Kind::Escaped | Kind::Unescaped => Node::Var(tok.name.clone()),
            Kind::Partial => Node::Partial(partial.unwrap_or_default()),
            Kind::Section | Kind::Inverted => {
                stack.push((
                    tok.name.clone(),
                    kind == Kind::Inverted,
                    std::mem::take(&mut nodes),
                ));
                continue;
            }
            Kind::Close => {
                // The scanner checked the nesting, so there is an open section.
                let Some((name, inverted, outer)) = stack.pop() else {
                    continue;
                };
                let body = std::mem::replace(&mut nodes, outer);
                Node::Section {
                    name,
                    inverted,
                    body,
                }
            }
            Kind::Comment | Kind::Delims => continue,
        };
        nodes.push(node);
    }

    if is_top && (out.starts_with('\n') || out.starts_with("\r\n")) {
        // ribboncurls drops a leading blank line before a standalone section.
        out.insert_str(0, &breaker("{{", "}}"));
    }
    (out, nodes)
}

/// The spec's indentation of a standalone partial: `indent` before each line.
/// Empty lines are left alone (no trailing blanks), as mustache.js does.
fn indent_lines(text: &str, indent: &str) -> String {
    if indent.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split_inclusive('\n') {
        if line != "\n" && line != "\r\n" {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

// ---------------------------------------------------------------------------
// Partials
// ---------------------------------------------------------------------------

/// A partial as given to ribboncurls: one partial indented one way.
struct Slot {
    name: String,
    indent: String,
    prepared: Option<Rc<Prepared>>,
    /// The partial does not exist (it renders empty).
    missing: bool,
}

struct Prepared {
    text: String,
    nodes: Vec<Node>,
}

/// The partials of one rendering: their sources (each loaded once) and the
/// indented copies handed to ribboncurls.
struct Library<'a> {
    load: &'a mut dyn FnMut(&str) -> Result<Option<String>>,
    sources: HashMap<String, Option<Rc<str>>>,
    /// Names of missing partials, in the order they were met.
    missing: Vec<String>,
    variants: HashMap<(String, String), usize>,
    slots: Vec<Slot>,
}

impl Library<'_> {
    /// Loads every partial the template uses, and those they use, each once,
    /// and checks that each one parses, whether or not it ends up rendered.
    fn load_all(&mut self, toks: &[Tok]) -> Result<()> {
        // Names in reverse, so that popping visits them in template order.
        let names = |toks: &[Tok]| -> Vec<String> {
            toks.iter()
                .rev()
                .filter(|t| t.kind == Some(Kind::Partial))
                .map(|t| t.name.clone())
                .collect()
        };
        let mut todo = names(toks);
        while let Some(name) = todo.pop() {
            if self.sources.contains_key(&name) {
                continue;
            }
            let text =
                (self.load)(&name).map_err(|e| anyhow!("cannot load partial '{name}': {e:#}"))?;
            match &text {
                Some(text) => {
                    let toks = scan(text).map_err(|e| anyhow!("partial '{name}': {e}"))?;
                    todo.extend(names(&toks));
                }
                None => self.missing.push(name.clone()),
            }
            self.sources.insert(name, text.map(Rc::from));
        }
        Ok(())
    }

    /// The id of the copy of partial `name` indented by `indent`.
    fn alloc(&mut self, name: &str, indent: &str) -> usize {
        let key = (name.to_string(), indent.to_string());
        if let Some(&id) = self.variants.get(&key) {
            return id;
        }
        let id = self.slots.len();
        self.slots.push(Slot {
            name: name.to_string(),
            indent: indent.to_string(),
            prepared: None,
            missing: false,
        });
        self.variants.insert(key, id);
        id
    }

    /// The rewritten text and structure of copy `id`, or `None` for a missing partial.
    fn prepare(&mut self, id: usize) -> Result<Option<Rc<Prepared>>> {
        let slot = &self.slots[id];
        if slot.missing {
            return Ok(None);
        }
        if let Some(p) = &slot.prepared {
            return Ok(Some(p.clone()));
        }
        let name = slot.name.clone();
        let Some(Some(source)) = self.sources.get(&name).cloned() else {
            self.slots[id].missing = true;
            return Ok(None);
        };
        let text = indent_lines(&source, &self.slots[id].indent);
        let toks = scan(&text).map_err(|e| anyhow!("partial '{name}': {e}"))?;
        let (text, nodes) = normalize(&text, &toks, Mode::Lf, false, &mut |n, ind| {
            self.alloc(n, ind)
        });
        let prepared = Rc::new(Prepared { text, nodes });
        self.slots[id].prepared = Some(prepared.clone());
        Ok(Some(prepared))
    }

    /// Prepares the copies referenced so far that the walk did not reach.
    /// The walk follows ribboncurls' rules, so these should not be rendered:
    /// this is only a safety net, one level deep (going on would not end for
    /// a recursive partial on an indented line: each level is indented more).
    fn prepare_unreached(&mut self) -> Result<()> {
        for id in 0..self.slots.len() {
            self.prepare(id)?;
        }
        Ok(())
    }

    /// The partials as ribboncurls wants them: a YAML mapping name -> text.
    fn partials_yaml(&self) -> Result<Option<String>> {
        let map: BTreeMap<String, &str> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((format!("p{id}"), s.prepared.as_ref()?.text.as_str())))
            .collect();
        if map.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_yaml::to_string(&map)?))
    }
}

// ---------------------------------------------------------------------------
// Warnings: walking the templates over the context
// ---------------------------------------------------------------------------

struct Walker<'l, 'a> {
    lib: &'l mut Library<'a>,
    warnings: Vec<Warning>,
}

impl Walker<'_, '_> {
    /// Visits what ribboncurls will render, noting each name without a value.
    fn walk(
        &mut self,
        nodes: &[Node],
        stack: &mut Vec<&Value>,
        depth: usize,
        partial: Option<&str>,
    ) -> Result<()> {
        for node in nodes {
            match node {
                Node::Var(name) => {
                    if resolve(stack, name).is_none() {
                        self.warn(name, partial);
                    }
                }
                Node::Section {
                    name,
                    inverted,
                    body,
                } => {
                    let value = resolve(stack, name);
                    if value.is_none() {
                        self.warn(name, partial);
                    }
                    let depth = depth + 1;
                    if depth > MAX_NESTING {
                        bail!("sections and partials nested more than {MAX_NESTING} deep");
                    }
                    if *inverted {
                        if !truthy(value) {
                            self.walk(body, stack, depth, partial)?;
                        }
                        continue;
                    }
                    match value {
                        Some(Value::Array(items)) => {
                            for item in items {
                                // ribboncurls skips falsy items of `{{#.}}` only.
                                if name == "." && !truthy(Some(item)) {
                                    continue;
                                }
                                stack.push(item);
                                self.walk(body, stack, depth, partial)?;
                                stack.pop();
                            }
                        }
                        Some(v) if truthy(value) => {
                            stack.push(v);
                            self.walk(body, stack, depth, partial)?;
                            stack.pop();
                        }
                        _ => {}
                    }
                }
                Node::Partial(id) => {
                    let Some(prepared) = self.lib.prepare(*id)? else {
                        continue;
                    };
                    if depth >= MAX_NESTING {
                        bail!(
                            "sections and partials nested more than {MAX_NESTING} deep (does partial '{}' include itself without end?)",
                            self.lib.slots[*id].name
                        );
                    }
                    let name = self.lib.slots[*id].name.clone();
                    self.walk(&prepared.nodes, stack, depth + 1, Some(&name))?;
                }
            }
        }
        Ok(())
    }

    fn warn(&mut self, name: &str, partial: Option<&str>) {
        self.warnings.push(Warning::NoValue {
            name: name.to_string(),
            partial: partial.map(str::to_string),
        });
    }
}

/// The spec's name resolution: `.` is the current item; otherwise the first
/// part of a dotted name is looked up from the innermost context outwards,
/// and the other parts inside what it found.
fn resolve<'c>(stack: &[&'c Value], name: &str) -> Option<&'c Value> {
    if name == "." {
        return stack.last().copied();
    }
    let mut parts = name.split('.');
    let first = parts.next()?;
    let mut value = stack
        .iter()
        .rev()
        .find_map(|frame| frame.as_object()?.get(first))?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Truthiness as ribboncurls sees it: missing, null, false, "", [] and {}
/// are falsy (the spec only names false, null and []; numbers, even 0, are true).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

// ---------------------------------------------------------------------------
// The context as YAML
// ---------------------------------------------------------------------------

/// The context as the YAML text ribboncurls parses: flow style, ASCII only
/// (every other character escaped, since YAML refuses some), each mapping key
/// explicit (`? "k" : v`: an implicit key is limited to 1024 characters), and
/// numbers as strings of their JSON text (they render the same, and truthiness
/// is unchanged: a number is always true, a non-empty string too).
fn context_yaml(context: &Value) -> Result<String> {
    if too_deep(context, MAX_CONTEXT_DEPTH) {
        bail!("the context is nested more than {MAX_CONTEXT_DEPTH} levels deep, which templates do not support");
    }
    let mut out = String::new();
    write_yaml(context, &mut out);
    // ribboncurls renders with no data at all when its data does not parse:
    // make that an error instead, should this writer ever be wrong.
    serde_yaml::from_str::<serde_yaml::Value>(&out)
        .map_err(|e| anyhow!("internal error: cannot pass the context to the renderer: {e}"))?;
    Ok(out)
}

/// Whether arrays and objects nest more than `levels` deep in `value`
/// (recursing at most that deep, so any depth is safe to check).
fn too_deep(value: &Value, levels: usize) -> bool {
    let mut children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return false,
    };
    levels == 0 || children.any(|v| too_deep(v, levels - 1))
}

fn write_yaml(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_yaml_str(&n.to_string(), out),
        Value::String(s) => write_yaml_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str("? ");
                write_yaml_str(key, out);
                out.push_str(" : ");
                write_yaml(item, out);
            }
            out.push('}');
        }
    }
}

/// A YAML double-quoted scalar holding `s`, in printable ASCII.
fn write_yaml_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let out = render_file(&main, &json!({"port": 8000})).unwrap();
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
        let out = render_file(&main, &json!({"name": "x"})).unwrap();
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
        let out = render_file(&main, &json!({"a": 1})).unwrap();
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
        let out = render_file(&main, &json!({})).unwrap();
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
            let err = render_file(&main, &json!({})).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("template {}: ", main.display())),
                "{err}"
            );
            assert!(err.contains(&format!("partial '{name}'")), "{err}");
        }
    }

    #[test]
    fn unreadable_template_names_the_file() {
        let err = render_file(Path::new("/nonexistent/t.tpl"), &json!({}))
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
            let err = render_file(&main, &json!({})).unwrap_err().to_string();
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
        let err = render_file(&main, &json!({})).unwrap_err().to_string();
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
        let out = render_file(&main, &json!({"host": "h", "ports": {"http": 80}})).unwrap();
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
    fn context_yaml_round_trips() {
        let long_key = "k".repeat(3000);
        let ctx = json!({
            long_key.clone(): "long",
            "s": "é\u{7f}\u{fffe}😀\"\\\n",
            "n": [1, -2.5, null, true, false, {}, []],
            "": "empty key",
        });
        let yaml = context_yaml(&ctx).unwrap();
        assert!(yaml.is_ascii());
        let back: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let back: Value = serde_json::to_value(back).unwrap();
        let mut expected = ctx.clone();
        expected["n"] = json!(["1", "-2.5", null, true, false, {}, []]);
        assert_eq!(back, expected);
        let out = render_plain(&format!("{{{{{long_key}}}}}"), &ctx);
        assert_eq!(out.text, "long");
    }

    #[test]
    fn deep_and_large_contexts() {
        let mut deep = json!("bottom");
        for _ in 0..127 {
            deep = json!({ "a": deep });
        }
        let ctx = json!({ "d": deep.clone() });
        let path = format!("d{}", ".a".repeat(127));
        assert_eq!(
            render_plain(&format!("{{{{{path}}}}}"), &ctx).text,
            "bottom"
        );
        let too_deep = json!({ "d": { "e": deep } });
        let err = render_str("x", &too_deep, &mut no_partials).unwrap_err();
        assert!(
            err.to_string().contains("nested more than 128 levels"),
            "{err}"
        );
        let mut very_deep = json!(1);
        for _ in 0..100_000 {
            very_deep = Value::Array(vec![very_deep]);
        }
        assert!(render_str("x", &very_deep, &mut no_partials).is_err());
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
