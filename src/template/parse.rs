//! Scanning and parsing: a template's text into a [`Node`] tree, applying
//! set-delimiter tags and the spec's standalone-line rules on the way.

use anyhow::{anyhow, bail, Result};

/// How deeply sections may nest inside one template (trees are walked recursively).
const MAX_SECTION_DEPTH: usize = 100;

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    /// `{{x}}` (escaped) or `{{{x}}}` / `{{& x}}`.
    Var {
        name: String,
        escape: bool,
    },
    /// `{{#x}}…{{/x}}`, or `{{^x}}…{{/x}}` when inverted.
    Section {
        name: String,
        inverted: bool,
        body: Vec<Node>,
    },
    /// `{{> name}}`; `indent` is the blanks before a standalone partial tag.
    Partial {
        name: String,
        indent: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Escaped,
    Unescaped,
    Section,
    Inverted,
    Close,
    Partial,
    Comment,
    Delims,
}

/// A run of text (`text` is the run), or a tag (`text` is its trimmed name).
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    /// Byte offset of the token in the template, for line numbers.
    start: usize,
}

impl Tok<'_> {
    /// Whether the tag would vanish with its line if alone on it.
    fn can_stand_alone(&self) -> bool {
        !matches!(self.kind, Kind::Text | Kind::Escaped | Kind::Unescaped)
    }
}

fn line_of(src: &str, pos: usize) -> usize {
    src[..pos].matches('\n').count() + 1
}

/// Parses a template, or says (with a line number) why it does not parse.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>> {
    // A scanning error is reported after the errors in the tags before it.
    let mut toks = Vec::new();
    let scanned = scan(src, &mut toks);
    let indents = strip_standalone(&mut toks);
    // Open sections, innermost last: the tag, and the nodes before it.
    let mut open: Vec<(&Tok, Vec<Node>)> = Vec::new();
    let mut nodes = Vec::new();
    for (tok, indent) in toks.iter().zip(indents) {
        let name = tok.text.to_string();
        match tok.kind {
            Kind::Text if !tok.text.is_empty() => nodes.push(Node::Text(name)),
            Kind::Escaped | Kind::Unescaped => nodes.push(Node::Var {
                name,
                escape: tok.kind == Kind::Escaped,
            }),
            Kind::Partial => nodes.push(Node::Partial {
                name,
                indent: indent.to_string(),
            }),
            Kind::Section | Kind::Inverted => {
                if open.len() >= MAX_SECTION_DEPTH {
                    bail!(
                        "line {}: sections nested more than {MAX_SECTION_DEPTH} deep",
                        line_of(src, tok.start)
                    );
                }
                open.push((tok, std::mem::take(&mut nodes)));
            }
            Kind::Close => match open.pop() {
                Some((section, outer)) if section.text == tok.text => {
                    let body = std::mem::replace(&mut nodes, outer);
                    nodes.push(Node::Section {
                        name,
                        inverted: section.kind == Kind::Inverted,
                        body,
                    });
                }
                Some((section, _)) => bail!(
                    "line {}: unexpected closing tag '{name}': section '{}' (opened on line {}) must be closed first",
                    line_of(src, tok.start),
                    section.text,
                    line_of(src, section.start)
                ),
                None => bail!(
                    "line {}: unexpected closing tag '{name}': no section is open",
                    line_of(src, tok.start)
                ),
            },
            Kind::Text | Kind::Comment | Kind::Delims => {}
        }
    }
    scanned?;
    match open.pop() {
        Some((section, _)) => bail!(
            "unclosed section '{}' (opened on line {})",
            section.text,
            line_of(src, section.start)
        ),
        None => Ok(nodes),
    }
}

/// Splits a template into text and tags, following set-delimiter tags.
fn scan<'a>(src: &'a str, toks: &mut Vec<Tok<'a>>) -> Result<()> {
    let (mut open, mut close) = (String::from("{{"), String::from("}}"));
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        let at = rest.find(&open).unwrap_or(rest.len());
        if at > 0 {
            toks.push(Tok {
                kind: Kind::Text,
                text: &rest[..at],
                start: i,
            });
            i += at;
            continue;
        }
        let line = || line_of(src, i);
        // The triple mustache repeats the delimiters' first character (ASCII,
        // checked when set, so slicing one byte is safe).
        let triple = (
            format!("{open}{}", &open[..1]),
            format!("{close}{}", &close[..1]),
        );
        let (kind, name, len) = if let Some(after) = rest.strip_prefix(&triple.0) {
            let e = after.find(&triple.1).ok_or_else(|| {
                anyhow!(
                    "line {}: unclosed tag: no '{}' after '{}'",
                    line(),
                    triple.1,
                    triple.0
                )
            })?;
            let len = triple.0.len() + e + triple.1.len();
            (Kind::Unescaped, after[..e].trim(), len)
        } else {
            let after = &rest[open.len()..];
            let e = after.find(&close).ok_or_else(|| {
                anyhow!("line {}: unclosed tag: no '{close}' after '{open}'", line())
            })?;
            let content = &after[..e];
            // The sigil must directly follow the delimiter.
            let (kind, skip) = match content.bytes().next() {
                Some(b'&') => (Kind::Unescaped, 1),
                Some(b'#') => (Kind::Section, 1),
                Some(b'^') => (Kind::Inverted, 1),
                Some(b'/') => (Kind::Close, 1),
                Some(b'>') => (Kind::Partial, 1),
                Some(b'!') => (Kind::Comment, content.len()),
                Some(b'=') => (Kind::Delims, content.len()),
                _ => (Kind::Escaped, 0),
            };
            let len = open.len() + e + close.len();
            if kind == Kind::Delims {
                (open, close) = parse_delims(content).ok_or_else(|| anyhow!(
                    "line {}: bad set-delimiters tag '{}' (expected e.g. '{{{{=<% %>=}}}}', with two delimiters of visible ASCII characters other than '=')",
                    line(),
                    &rest[..len]
                ))?;
            }
            (kind, content[skip..].trim(), len)
        };
        if name.is_empty() && !matches!(kind, Kind::Comment | Kind::Delims) {
            bail!("line {}: empty tag '{}'", line(), &rest[..len]);
        }
        toks.push(Tok {
            kind,
            text: name,
            start: i,
        });
        i += len;
    }
    Ok(())
}

/// The new delimiters of a set-delimiter tag's content (`=<% %>=`).
fn parse_delims(content: &str) -> Option<(String, String)> {
    let inner = content.strip_prefix('=')?.strip_suffix('=')?;
    let mut parts = inner.split(' ').filter(|p| !p.is_empty());
    let ok = |d: &str| d.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(c), None) if ok(o) && ok(c) => Some((o.to_string(), c.to_string())),
        _ => None,
    }
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b == b'\t')
}

/// Removes the lines holding only blanks and one tag that can stand alone
/// (section, inverted, closing, partial, comment, set-delimiters), per the
/// spec. Returns, for each token, the blanks before it on its line if it is a
/// standalone tag: the indentation of a standalone partial.
fn strip_standalone<'a>(toks: &mut [Tok<'a>]) -> Vec<&'a str> {
    let text = |k: usize| toks.get(k).filter(|t| t.kind == Kind::Text).map(|t| t.text);
    let standalone: Vec<Option<&str>> = (0..toks.len())
        .map(|k| {
            if !toks[k].can_stand_alone() {
                return None;
            }
            let before = match k.checked_sub(1) {
                None => "",
                Some(p) => {
                    let prev = text(p)?;
                    match prev.rfind('\n') {
                        Some(n) => &prev[n + 1..],
                        // No line break: only the template's first line starts here.
                        None if p == 0 => prev,
                        None => return None,
                    }
                }
            };
            let after_ok = match toks.get(k + 1) {
                None => true,
                Some(_) => text(k + 1).is_some_and(|next| match next.find('\n') {
                    Some(n) => is_blank(next[..n].strip_suffix('\r').unwrap_or(&next[..n])),
                    None => k + 2 == toks.len() && is_blank(next),
                }),
            };
            (is_blank(before) && after_ok).then_some(before)
        })
        .collect();
    for (k, s) in standalone.iter().enumerate() {
        if s.is_none() {
            continue;
        }
        if let Some(prev) = k.checked_sub(1).map(|p| &mut toks[p]) {
            prev.text = &prev.text[..prev.text.rfind('\n').map_or(0, |n| n + 1)];
        }
        if let Some(next) = toks.get_mut(k + 1) {
            next.text = &next.text[next.text.find('\n').map_or(next.text.len(), |n| n + 1)..];
        }
    }
    standalone
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}
