//! Documents with references: YAML and JSON read into an ordered tree
//! (key order kept), TOML edited in place (comments and layout kept).

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use zeroize::{Zeroize, Zeroizing};

use tresor_core::{Error, Result};

use super::{Place, Resolver};

/// A document format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML (one document).
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file name's extension says (`.yaml`, `.yml`, `.toml`,
    /// `.json`), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Parses `yaml`, `toml` or `json`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "yaml",
            Format::Toml => "toml",
            Format::Json => "json",
        })
    }
}

/// `.key`, or `["key"]` when the key is not a plain word.
pub(super) fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str(&format!("[{key:?}]"));
    }
}

/// `[i]`.
pub(super) fn push_index(path: &mut String, i: usize) {
    path.push_str(&format!("[{i}]"));
}

/// An ordered tree of YAML or JSON values.
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn wipe(&mut self) {
        match self {
            Node::Str(s) => s.zeroize(),
            Node::Seq(items) => items.iter_mut().for_each(Node::wipe),
            Node::Map(pairs) => pairs.iter_mut().for_each(|(_, v)| v.wipe()),
            _ => {}
        }
    }

    fn key_text(&self) -> String {
        match self {
            Node::Str(s) => s.clone(),
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::UInt(u) => u.to_string(),
            Node::Float(f) => f.to_string(),
            Node::Seq(_) | Node::Map(_) => "?".into(),
        }
    }

    fn into_json(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::from(i),
            Node::UInt(u) => Value::from(u),
            Node::Float(f) => Value::from(f),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_json).collect()),
            Node::Map(pairs) => Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.key_text(), v.into_json()))
                    .collect(),
            ),
        }
    }
}

/// Zeroizes its tree when dropped.
struct Tree(Node);

impl Drop for Tree {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("an integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Node, E> {
        u64::try_from(v)
            .map(Node::UInt)
            .map_err(|_| E::custom("an integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Node, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Node::Map(pairs))
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(i) => s.serialize_i64(*i),
            Node::UInt(u) => s.serialize_u64(*u),
            Node::Float(f) => s.serialize_f64(*f),
            Node::Str(t) => s.serialize_str(t),
            Node::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn parse_error(format: Format, file: Option<&Path>, problem: String) -> Error {
    Error::Malformed {
        what: file.map_or_else(
            || format!("the {format} document"),
            |f| f.display().to_string(),
        ),
        problem: format!("not valid {format}: {problem}"),
    }
}

fn read_tree(text: &str, format: Format, file: Option<&Path>) -> Result<Tree> {
    // Parser messages quote at most the document's own text around a syntax
    // error; the document is the user's input, not a resolved value.
    let node = match format {
        Format::Yaml => serde_saphyr::from_str::<Node>(text)
            .map_err(|e| parse_error(format, file, first_line(&e.to_string())))?,
        Format::Json => serde_json::from_str::<Node>(text)
            .map_err(|e| parse_error(format, file, e.to_string()))?,
        Format::Toml => unreachable!("TOML is edited in place"),
    };
    Ok(Tree(node))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// A YAML document as a `serde_json::Value` (keys as text).
pub(super) fn yaml_to_json(text: &str, file: Option<&Path>) -> Result<serde_json::Value> {
    let mut tree = read_tree(text, Format::Yaml, file)?;
    let node = std::mem::replace(&mut tree.0, Node::Null);
    Ok(node.into_json())
}

/// Every string value in `value` (not keys).
pub(super) fn json_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    use serde_json::Value;
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

fn node_strings<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
    match node {
        Node::Str(s) => out.push(s),
        Node::Seq(items) => items.iter().for_each(|v| node_strings(v, out)),
        Node::Map(pairs) => pairs.iter().for_each(|(_, v)| node_strings(v, out)),
        _ => {}
    }
}

/// Zeroizes every string in `value`.
pub(super) fn wipe_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(map) => map.values_mut().for_each(wipe_json),
        _ => {}
    }
}

pub(super) fn render(
    resolver: &mut Resolver<'_>,
    text: &str,
    format: Format,
    file: Option<&Path>,
) -> Result<Zeroizing<String>> {
    if format == Format::Toml {
        return render_toml(resolver, text, file);
    }
    let mut tree = read_tree(text, format, file)?;
    let mut texts = Vec::new();
    node_strings(&tree.0, &mut texts);
    resolver.prefetch(texts);
    let mut path = String::new();
    resolve_node(resolver, &mut tree.0, file, &mut path)?;
    let out = match format {
        Format::Json => serde_json::to_string_pretty(&tree.0)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| e.to_string()),
        _ => serde_saphyr::to_string(&tree.0).map_err(|e| e.to_string()),
    };
    out.map(Zeroizing::new).map_err(|e| Error::Malformed {
        what: format!("the rendered {format} document"),
        problem: e,
    })
}

fn resolve_node(
    resolver: &mut Resolver<'_>,
    node: &mut Node,
    file: Option<&Path>,
    path: &mut String,
) -> Result<()> {
    match node {
        Node::Str(s) => {
            if let Some(v) = resolver.resolve_at(
                s,
                Place {
                    file,
                    path,
                    line: None,
                },
            )? {
                s.zeroize();
                s.push_str(&v);
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                resolve_node(resolver, item, file, path)?;
                path.truncate(len);
            }
        }
        Node::Map(pairs) => {
            for (k, v) in pairs.iter_mut() {
                let len = path.len();
                push_key(path, &k.key_text());
                resolve_node(resolver, v, file, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn render_toml(
    resolver: &mut Resolver<'_>,
    text: &str,
    file: Option<&Path>,
) -> Result<Zeroizing<String>> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        parse_error(Format::Toml, file, first_line(e.message()))
    })?;
    let mut path = String::new();
    toml_table(resolver, doc.as_table_mut(), file, &mut path)?;
    Ok(Zeroizing::new(doc.to_string()))
}

fn toml_table(
    resolver: &mut Resolver<'_>,
    table: &mut toml_edit::Table,
    file: Option<&Path>,
    path: &mut String,
) -> Result<()> {
    for (key, item) in table.iter_mut() {
        let len = path.len();
        push_key(path, key.get());
        toml_item(resolver, item, file, path)?;
        path.truncate(len);
    }
    Ok(())
}

fn toml_item(
    resolver: &mut Resolver<'_>,
    item: &mut toml_edit::Item,
    file: Option<&Path>,
    path: &mut String,
) -> Result<()> {
    match item {
        toml_edit::Item::Value(v) => toml_value(resolver, v, file, path),
        toml_edit::Item::Table(t) => toml_table(resolver, t, file, path),
        toml_edit::Item::ArrayOfTables(tables) => {
            for (i, t) in tables.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                toml_table(resolver, t, file, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        toml_edit::Item::None => Ok(()),
    }
}

fn toml_value(
    resolver: &mut Resolver<'_>,
    value: &mut toml_edit::Value,
    file: Option<&Path>,
    path: &mut String,
) -> Result<()> {
    match value {
        toml_edit::Value::String(s) => {
            if let Some(v) = resolver.resolve_at(
                s.value(),
                Place {
                    file,
                    path,
                    line: None,
                },
            )? {
                let decor = s.decor().clone();
                let mut new = toml_edit::Formatted::new(v.to_string());
                *new.decor_mut() = decor;
                *s = new;
            }
        }
        toml_edit::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                toml_value(resolver, item, file, path)?;
                path.truncate(len);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (key, v) in t.iter_mut() {
                let len = path.len();
                push_key(path, key.get());
                toml_value(resolver, v, file, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}
