//! Rendering: one walk of the parsed template over the context that writes
//! the text and notes every name without a value.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::parse::{parse, Node};
use super::Limits;

/// How deeply sections and partials may nest while rendering; this also
/// stops a partial that includes itself without end.
const MAX_NESTING: usize = 200;

/// A problem worth telling the user about, formatted by the callers.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Warning {
    NoValue {
        name: String,
        partial: Option<String>,
    },
    NoPartial(String),
}

pub(crate) struct Output {
    pub text: String,
    pub warnings: Vec<Warning>,
}

pub(crate) type Loader<'a> = dyn FnMut(&str) -> Result<Option<String>> + 'a;

pub(crate) fn render(
    template: &str,
    context: &Value,
    load: &mut Loader,
    limits: &Limits,
) -> Result<Output> {
    let nodes = parse(template)?;
    let mut renderer = Renderer {
        sources: HashMap::new(),
        trees: HashMap::new(),
        out: Output {
            text: String::with_capacity(template.len() * 2),
            warnings: Vec::new(),
        },
        warned: HashSet::new(),
        steps: 0,
        limits: *limits,
    };
    renderer.load_partials(&nodes, load)?;
    renderer.nodes(&nodes, &mut vec![context], 0, None)?;
    Ok(renderer.out)
}

struct Renderer {
    /// Each partial's text, `None` if missing, loaded once.
    sources: HashMap<String, Option<String>>,
    /// Parsed partials by name and indentation (a standalone partial is
    /// indented line by line before it is parsed, as the spec says).
    trees: HashMap<(String, String), Rc<Vec<Node>>>,
    out: Output,
    /// Each warning is kept once: a missing name inside a loop would
    /// otherwise grow the list with every item.
    warned: HashSet<Warning>,
    /// Nodes visited so far, against `limits.max_steps`.
    steps: u64,
    limits: Limits,
}

impl Renderer {
    /// Loads every partial the template uses, and those they use, each once,
    /// and checks that each parses, whether or not it ends up rendered.
    fn load_partials(&mut self, nodes: &[Node], load: &mut Loader) -> Result<()> {
        let mut todo = partial_names(nodes);
        while let Some(name) = todo.pop() {
            if self.sources.contains_key(&name) {
                continue;
            }
            let text = load(&name).map_err(|e| anyhow!("cannot load partial '{name}': {e:#}"))?;
            match &text {
                Some(text) => {
                    let tree = parse(text).map_err(|e| anyhow!("partial '{name}': {e}"))?;
                    todo.extend(partial_names(&tree));
                    self.trees
                        .insert((name.clone(), String::new()), Rc::new(tree));
                }
                None => self.warn(Warning::NoPartial(name.clone())),
            }
            self.sources.insert(name, text);
        }
        Ok(())
    }

    /// Partial `name` indented by `indent`, or `None` if it is missing.
    fn partial(&mut self, name: &str, indent: &str) -> Result<Option<Rc<Vec<Node>>>> {
        let key = (name.to_string(), indent.to_string());
        if let Some(tree) = self.trees.get(&key) {
            return Ok(Some(tree.clone()));
        }
        let Some(Some(text)) = self.sources.get(name) else {
            return Ok(None);
        };
        let tree =
            parse(&indent_lines(text, indent)).map_err(|e| anyhow!("partial '{name}': {e}"))?;
        let tree = Rc::new(tree);
        self.trees.insert(key, tree.clone());
        Ok(Some(tree))
    }

    fn nodes(
        &mut self,
        nodes: &[Node],
        stack: &mut Vec<&Value>,
        depth: usize,
        partial: Option<&str>,
    ) -> Result<()> {
        for node in nodes {
            self.step()?;
            match node {
                Node::Text(text) => self.out.text.push_str(text),
                Node::Var { name, escape } => {
                    if let Some(value) = self.lookup(stack, name, partial) {
                        write_value(&mut self.out.text, value, *escape);
                    }
                }
                Node::Section {
                    name,
                    inverted,
                    body,
                } => {
                    let value = self.lookup(stack, name, partial);
                    if depth >= MAX_NESTING {
                        bail!("sections and partials nested more than {MAX_NESTING} deep");
                    }
                    if *inverted {
                        if !value.is_some_and(truthy) {
                            self.nodes(body, stack, depth + 1, partial)?;
                        }
                        continue;
                    }
                    let items = match value {
                        Some(Value::Array(items)) => items.as_slice(),
                        Some(v) if truthy(v) => std::slice::from_ref(v),
                        _ => &[],
                    };
                    for item in items {
                        self.step()?;
                        stack.push(item);
                        self.nodes(body, stack, depth + 1, partial)?;
                        stack.pop();
                    }
                }
                Node::Partial { name, indent } => {
                    let Some(tree) = self.partial(name, indent)? else {
                        continue;
                    };
                    if depth >= MAX_NESTING {
                        bail!("sections and partials nested more than {MAX_NESTING} deep (does partial '{name}' include itself without end?)");
                    }
                    self.nodes(&tree, stack, depth + 1, Some(name))?;
                }
            }
            if self.out.text.len() as u64 > self.limits.max_bytes {
                bail!(
                    "the output grew past {} bytes (limits.maxRenderedBytes): raise that limit in the config if the template really renders that much",
                    self.limits.max_bytes
                );
            }
        }
        Ok(())
    }

    /// Counts one step of work: a hostile template (sections nested over a
    /// long list) must fail fast, not run for minutes.
    fn step(&mut self) -> Result<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            bail!(
                "rendering takes more than {} steps (limits.maxTemplateSteps): raise that limit in the config if the template really needs it",
                self.limits.max_steps
            );
        }
        Ok(())
    }

    fn warn(&mut self, warning: Warning) {
        if self.warned.insert(warning.clone()) {
            self.out.warnings.push(warning);
        }
    }

    /// The spec's name resolution: `.` is the current item; otherwise the
    /// first part of a dotted name is looked up from the innermost context
    /// outwards, and the other parts inside what it found. A name that
    /// resolves to nothing gives a warning.
    fn lookup<'v>(
        &mut self,
        stack: &[&'v Value],
        name: &str,
        partial: Option<&str>,
    ) -> Option<&'v Value> {
        let found = if name == "." {
            stack.last().copied()
        } else {
            let mut parts = name.split('.');
            let first = parts.next().unwrap_or_default();
            let mut found = stack
                .iter()
                .rev()
                .find_map(|frame| frame.as_object()?.get(first));
            for part in parts {
                found = found.and_then(|value| value.as_object()?.get(part));
            }
            found
        };
        if found.is_none() {
            self.warn(Warning::NoValue {
                name: name.to_string(),
                partial: partial.map(str::to_string),
            });
        }
        found
    }
}

/// The names of the partials a template uses, last first (to pop in order).
fn partial_names(nodes: &[Node]) -> Vec<String> {
    fn walk(nodes: &[Node], names: &mut Vec<String>) {
        for node in nodes {
            match node {
                Node::Partial { name, .. } => names.push(name.clone()),
                Node::Section { body, .. } => walk(body, names),
                Node::Text(_) | Node::Var { .. } => {}
            }
        }
    }
    let mut names = Vec::new();
    walk(nodes, &mut names);
    names.reverse();
    names
}

/// Falsy: null, false, "", [] and {} (numbers, even 0, are true).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) | Value::Number(_) => true,
    }
}

/// Strings as they are, numbers as their JSON text (so `8000` is never
/// `8000.0`), `true`; null, false, lists and objects render empty.
fn write_value(out: &mut String, value: &Value, escape: bool) {
    let number;
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Number(n) => {
            number = n.to_string();
            &number
        }
        Value::Bool(true) => "true",
        _ => "",
    };
    if !escape {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The spec's indentation of a standalone partial: `indent` before each line.
/// Empty lines are left alone (no trailing blanks), as mustache.js does.
fn indent_lines(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split_inclusive('\n') {
        if line != "\n" && line != "\r\n" {
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}
