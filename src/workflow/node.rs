//! A YAML document as a tree of nodes that each remember where they were
//! written.
//!
//! Why not deserialize straight into the workflow structs? Because serde
//! stops at the first problem, and ops staff deserve every mistake in a file
//! at once, each with its `line:col`. So `serde-saphyr` (with its resource
//! budget against hostile input) builds this small spanned tree, and
//! [`super::validate`] walks it, collecting diagnostics as it goes.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node was written: 1-based line and column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own positions so "unknown key" points at the key.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Scalars as text (for keys and for fields like `sleep: 30` that may
    /// be written unquoted).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The deepest nesting below this node (a scalar is 1).
    pub fn depth(&self) -> usize {
        match &self.kind {
            Kind::Seq(v) => 1 + v.iter().map(Node::depth).max().unwrap_or(0),
            Kind::Map(m) => 1 + m.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Converts to JSON, dropping positions (for literal action arguments).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(v) => J::Array(v.iter().map(Node::to_json).collect()),
            Kind::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// What serde-saphyr hands us before positions are attached.
struct Raw(Kind);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Spanned<Raw> = Spanned::deserialize(d)?;
        Ok(Node {
            pos: Pos {
                line: s.referenced.line() as u32,
                col: s.referenced.column() as u32,
            },
            kind: s.value.0,
        })
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(Kind::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(Kind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Kind::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Kind::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Raw(Kind::Int(i))),
            Err(_) => Ok(Raw(Kind::Float(v as f64))),
        }
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Raw(Kind::Int(i))),
            Err(_) => Ok(Raw(Kind::Float(v as f64))),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Raw(Kind::Int(i))),
            Err(_) => Ok(Raw(Kind::Float(v as f64))),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Kind::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            out.push(n);
        }
        Ok(Raw(Kind::Seq(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = a.next_entry::<Node, Node>()? {
            out.push((k, v));
        }
        Ok(Raw(Kind::Map(out)))
    }
}

/// Limits against hostile input. A workflow is a page or two of YAML; these
/// are two orders of magnitude above any real one.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
pub const MAX_DEPTH: usize = 24;
const MAX_NODES: usize = 50_000;
const MAX_ALIASES: usize = 200;

/// A YAML-level failure: syntax, a duplicate key, or a breached limit.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a spanned tree, within the budget.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: format!(
                "file is {} bytes; the limit is {MAX_FILE_BYTES} bytes",
                text.len()
            ),
        });
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH + 2;
    budget.max_nodes = MAX_NODES;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_documents = 1;
    budget.max_recorded_anchor_events = 20_000;
    budget.max_recorded_anchor_bytes = 1 << 20;
    budget.max_merge_keys = 100;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    // YAML 1.2 booleans only: `on:` (the trigger key) must stay a string,
    // and `no`/`off` are not silently false.
    opts.strict_booleans = true;
    opts.with_snippet = false;
    match serde_saphyr::from_str_with_options::<Node>(text, opts) {
        Ok(n) => {
            if n.depth() > MAX_DEPTH {
                return Err(SyntaxError {
                    pos: n.pos,
                    message: format!("nesting is deeper than {MAX_DEPTH} levels"),
                });
            }
            Ok(n)
        }
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line() as u32,
                    col: l.column() as u32,
                })
                .filter(|p| p.line > 0)
                .unwrap_or(Pos { line: 1, col: 1 });
            Err(SyntaxError {
                pos,
                message: plain_message(&e),
            })
        }
    }
}

/// serde-saphyr renders errors with a source snippet; a diagnostic wants one
/// line.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = match e.without_snippet() {
        serde_saphyr::Error::Message { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // Drop a trailing " at line X, column Y": we print the position ourselves.
    let cleaned = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    if let Some(rest) = cleaned.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key \"{key}\"");
    }
    format!("invalid YAML: {cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_recorded() {
        let n = parse("a: 1\nb:\n  - x\n  - {c: true}\n").unwrap();
        let b = n.get("b").unwrap();
        assert_eq!(b.pos.line, 3);
        if let Kind::Seq(items) = &b.kind {
            assert_eq!(items[1].get("c").unwrap().pos, Pos { line: 4, col: 9 });
        } else {
            panic!("not a seq");
        }
    }
}
