//! The JSON tree validation walks: parsed by serde_json's own parser straight from
//! the artifact's bytes, borrowing its strings, with each object's entries in one
//! flat vector instead of a hash map. An 8 MB artifact takes about a quarter of
//! the memory `serde_json::Value` needs, and `objectos verify` spends its time on
//! checks, not on allocating and zeroing pages.
//!
//! It reads exactly what `serde_json::Value` reads (same grammar, same errors,
//! same nesting limit), and a key given twice keeps its last value at its first
//! position, as `serde_json::Map` does with `preserve_order`. [`Value::to_serde`]
//! gives back a `serde_json::Value` for the small parts a model keeps;
//! [`Value::from_serde`] borrows a tree the build merged from fragments.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value, its strings borrowed from the text where they need no unescaping.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Map<'a>),
}

/// A JSON object: its entries in document order, each key once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
}

static NULL: Value<'static> = Value::Null;

impl<'a> Value<'a> {
    /// Parse JSON text as `serde_json::from_str::<serde_json::Value>` would.
    pub fn parse(text: &'a str) -> serde_json::Result<Value<'a>> {
        // What `serde_json::from_str` does, with a seed that holds the scratch space.
        let mut de = serde_json::Deserializer::from_str(text);
        let value = TreeSeed {
            scratch: &mut Scratch::default(),
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// [`Value::parse`], with the elements of the top-level `objects` array
    /// (nearly all of a large artifact) parsed in up to `parts` parts at once,
    /// each on a thread of its own. The same tree, and the same errors: a
    /// document this does not split cleanly (a syntax error anywhere, an
    /// `objects` that is not an array or is given twice, nesting near the
    /// limit) is parsed again the plain way, and that parse's error is the
    /// one returned.
    pub fn parse_in_parts(text: &'a str, parts: usize) -> serde_json::Result<Value<'a>> {
        Value::parse_split(text, parts, SPLIT_FROM)
    }

    /// [`Value::parse_in_parts`] for documents of at least `from` bytes.
    fn parse_split(text: &'a str, parts: usize, from: usize) -> serde_json::Result<Value<'a>> {
        if parts <= 1 || text.len() < from {
            return Value::parse(text);
        }
        match split_parse(text, parts) {
            Some(value) => Ok(value),
            None => Value::parse(text),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map<'a>> {
        match self {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value<'a>>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Number(_))
    }

    pub fn is_boolean(&self) -> bool {
        matches!(self, Value::Bool(_))
    }

    /// The value at `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object().and_then(|map| map.get(key))
    }

    /// The same value as a `serde_json::Value`, owning its strings.
    pub fn to_serde(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_serde).collect())
            }
            Value::Object(map) => serde_json::Value::Object(map.to_serde()),
        }
    }

    /// A tree over a `serde_json::Value`, borrowing its strings.
    pub fn from_serde(value: &'a serde_json::Value) -> Value<'a> {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.clone()),
            serde_json::Value::String(s) => Value::String(Cow::Borrowed(s)),
            serde_json::Value::Array(items) => {
                Value::Array(items.iter().map(Value::from_serde).collect())
            }
            // A serde_json map holds each key once already.
            serde_json::Value::Object(map) => Value::Object(Map {
                entries: map
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Value::from_serde(v)))
                    .collect(),
            }),
        }
    }
}

impl<'a> Map<'a> {
    /// The value at `key`. A linear scan: objects in a definition have a handful of
    /// keys, and the large ones (fields, grants) are walked, not searched.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        // Compared in line: keys are short, and a `memcmp` call for each key
        // of the same length cost more than the comparison.
        let key = key.as_bytes();
        self.entries
            .iter()
            .find(|(k, _)| k.len() == key.len() && k.bytes().zip(key).all(|(a, &b)| a == b))
            .map(|(_, v)| v)
    }

    /// The same object as a `serde_json::Map`, owning its strings.
    pub fn to_serde(&self) -> serde_json::Map<String, serde_json::Value> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_serde()))
            .collect()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub fn values(&self) -> impl Iterator<Item = &Value<'a>> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Keep one entry per key, as `serde_json::Map::insert` does: the last value,
    /// at the first position.
    fn dedupe(entries: &mut Vec<(Cow<'a, str>, Value<'a>)>) {
        let n = entries.len();
        if n <= 16 {
            let duplicated =
                (0..n).any(|i| (i + 1..n).any(|j| entries[i].0.as_ref() == entries[j].0.as_ref()));
            if !duplicated {
                return;
            }
        }
        // Indices of the entries, ordered by key and then by position.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
        let mut drop = vec![false; n];
        let mut any = false;
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && entries[order[end]].0 == entries[order[start]].0 {
                end += 1;
            }
            if end - start > 1 {
                any = true;
                let first = order[start];
                let last = order[end - 1];
                let value = std::mem::replace(&mut entries[last].1, Value::Null);
                entries[first].1 = value;
                for &i in &order[start + 1..end] {
                    drop[i] = true;
                }
            }
            start = end;
        }
        if any {
            let mut i = 0;
            entries.retain(|_| {
                let keep = !drop[i];
                i += 1;
                keep
            });
        }
    }
}

impl<'m, 'a> IntoIterator for &'m Map<'a> {
    type Item = (&'m str, &'m Value<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'m, (Cow<'a, str>, Value<'a>)>,
        fn(&'m (Cow<'a, str>, Value<'a>)) -> (&'m str, &'m Value<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> std::ops::Index<&str> for Map<'a> {
    type Output = Value<'a>;

    /// `null` for a missing key (never a panic).
    fn index(&self, key: &str) -> &Value<'a> {
        self.get(key).unwrap_or(&NULL)
    }
}

impl fmt::Display for Value<'_> {
    /// Compact JSON, as `serde_json::Value` displays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_serde(), f)
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TreeSeed {
            scratch: &mut Scratch::default(),
        }
        .deserialize(deserializer)
    }
}

/// The elements and entries of the arrays and objects being read, innermost
/// last: each array or object is copied out in one allocation of its exact size
/// when it ends, instead of growing a vector of its own.
#[derive(Default)]
struct Scratch<'de> {
    items: Vec<Value<'de>>,
    entries: Vec<(Cow<'de, str>, Value<'de>)>,
    /// How deep the arrays and objects being read are nested, and the
    /// deepest they were.
    depth: usize,
    deepest: usize,
}

impl Scratch<'_> {
    fn enter(&mut self) {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
    }
}

struct TreeSeed<'s, 'de> {
    scratch: &'s mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_, 'de> {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_, 'de> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        // What serde_json's own value does with a float it cannot hold.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        self.scratch.enter();
        let start = self.scratch.items.len();
        while let Some(item) = seq.next_element_seed(TreeSeed {
            scratch: &mut *self.scratch,
        })? {
            self.scratch.items.push(item);
        }
        self.scratch.depth -= 1;
        Ok(Value::Array(self.scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value<'de>, A::Error> {
        self.scratch.enter();
        let start = self.scratch.entries.len();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let value = access.next_value_seed(TreeSeed {
                scratch: &mut *self.scratch,
            })?;
            self.scratch.entries.push((key, value));
        }
        self.scratch.depth -= 1;
        let mut entries: Vec<_> = self.scratch.entries.drain(start..).collect();
        Map::dedupe(&mut entries);
        Ok(Value::Object(Map { entries }))
    }
}

/// Below this size a document is parsed on one thread: starting threads and
/// the skeleton pass would cost more than they save.
const SPLIT_FROM: usize = 1 << 20;

/// The deepest nesting of arrays and objects serde_json reads (its recursion
/// limit); a test holds it to serde_json's behaviour.
const MAX_NESTING: usize = 127;

/// [`Value::parse_in_parts`]'s split, or `None` where the plain parse must
/// decide. First the skeleton: the document with each element of `objects`
/// only scanned (serde_json checks its grammar and keeps its text); then the
/// elements, parsed in parts on threads of their own. An element read alone
/// is the tree it is inside the document, two levels shallower (the document
/// and the array), which the nesting check accounts for.
fn split_parse(text: &str, parts: usize) -> Option<Value<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut raw = None;
    let skeleton = SkeletonSeed { raw: &mut raw }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let raw: Vec<&serde_json::value::RawValue> = raw?;
    let Value::Object(mut doc) = skeleton else {
        return None;
    };
    let size = raw.len().div_ceil(parts).max(1);
    let parsed: Vec<Option<Vec<Value<'_>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = raw
            .chunks(size)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    let mut out = Vec::with_capacity(chunk.len());
                    for element in chunk {
                        let mut de = serde_json::Deserializer::from_str(element.get());
                        scratch.deepest = 0;
                        let value = TreeSeed {
                            scratch: &mut scratch,
                        }
                        .deserialize(&mut de)
                        .ok()?;
                        de.end().ok()?;
                        if scratch.deepest + 2 > MAX_NESTING {
                            return None;
                        }
                        out.push(value);
                    }
                    Some(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    let mut elements = Vec::with_capacity(raw.len());
    for part in parsed {
        elements.extend(part?);
    }
    let slot = doc.entries.iter_mut().find(|(k, _)| k == "objects")?;
    slot.1 = Value::Array(elements);
    Some(Value::Object(doc))
}

/// The document's top level, for [`split_parse`]: every entry a tree, but
/// `objects`, whose elements are only scanned and kept as text.
struct SkeletonSeed<'r, 'de> {
    raw: &'r mut Option<Vec<&'de serde_json::value::RawValue>>,
}

impl<'de> DeserializeSeed<'de> for SkeletonSeed<'_, 'de> {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SkeletonSeed<'_, 'de> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value<'de>, A::Error> {
        let mut scratch = Scratch::default();
        let mut entries = Vec::new();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            if key == "objects" {
                if self.raw.is_some() {
                    return Err(de::Error::custom("`objects` twice"));
                }
                *self.raw = Some(access.next_value()?);
                entries.push((key, Value::Array(Vec::new())));
                continue;
            }
            let value = access.next_value_seed(TreeSeed {
                scratch: &mut scratch,
            })?;
            entries.push((key, value));
        }
        Map::dedupe(&mut entries);
        Ok(Value::Object(Map { entries }))
    }
}

/// A key, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as compact JSON, written from its own entries (not through
    /// `to_serde`, whose map would hide a repeated key).
    fn text(value: &Value<'_>) -> String {
        match value {
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(text).collect();
                format!("[{}]", items.join(","))
            }
            Value::Object(map) => {
                let entries: Vec<String> = map
                    .entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::json!(k), text(v)))
                    .collect();
                format!("{{{}}}", entries.join(","))
            }
            scalar => scalar.to_serde().to_string(),
        }
    }

    /// Every input reads to the same tree `serde_json::Value` reads, or fails with
    /// the same message.
    #[test]
    fn reads_what_serde_json_reads_with_the_same_errors() {
        let cases = [
            r#"{"a":1,"b":[true,null,"x\u00e9\n"],"c":{"d":-2,"e":1.5e3}}"#,
            r#"{"k":1,"j":2,"k":3}"#,
            r#"{"a\"b":{"a\"b":1,"x":2,"a\"b":4}}"#,
            r#"[18446744073709551615, -9223372036854775808, 0.1, 1e308]"#,
            r#""just a string""#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"[1,2"#,
            r#"{"a":1e999}"#,
            "\"\\ud800\"",
            r#"{1:2}"#,
        ];
        for input in cases {
            let ours = Value::parse(input);
            let theirs = serde_json::from_str::<serde_json::Value>(input);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.to_serde(), b, "{input}");
                    // Same keys in the same order, each once.
                    assert_eq!(text(&a), b.to_string(), "{input}");
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{input}"),
                (a, b) => panic!("{input}: ours {a:?}, serde_json {b:?}"),
            }
        }
    }

    #[test]
    fn the_nesting_limit_is_serde_jsons() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_NESTING)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_NESTING + 1)).is_err());
        assert!(Value::parse(&nested(MAX_NESTING)).is_ok());
        assert!(Value::parse(&nested(MAX_NESTING + 1)).is_err());
    }

    /// Split in parts, a document reads to the tree the plain parse reads, or
    /// fails with the same message: broken elements, an `objects` that cannot
    /// be split, nesting at the limit. The controls: the ordinary documents do
    /// split (`split_parse` takes them), the odd ones do not.
    #[test]
    fn a_document_split_in_parts_reads_as_it_reads_whole() {
        let object = |i: usize, extra: &str| {
            format!(
                r#"{{"name":"o{i}","label":"L\u00e9 \"{i}\"","fields":{{"f":{{"type":"text","max":{i}.5,"options":[1,"two",{{"k":null}}]}},"f":{{"type":"number"}}}}{extra}}}"#
            )
        };
        let document = |objects: Vec<String>, tail: &str| {
            format!(
                r#"{{"manifest":{{"id":"a"}}, "objects" : [ {} ] ,"manifest":{{"id":"b"}},"x":[1,2]{tail}}}"#,
                objects.join(" ,\n ")
            )
        };
        let plain = |n: usize| (0..n).map(|i| object(i, "")).collect::<Vec<_>>();
        let with = |at: usize, extra: &str| {
            let mut objects = plain(9);
            objects[at] = object(at, extra);
            objects
        };
        let deep = |levels: usize| {
            format!(
                r#","deep":{}{}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        let splits = [
            document(plain(9), ""),
            document(plain(1), ""),
            document(Vec::new(), ""),
            document(with(4, r#","name":"again""#), ""),
            // Nesting of 125 inside an element: 127 in the document, the limit.
            document(with(2, &deep(125)), ""),
        ];
        let odd = [
            document(plain(9), r#","objects":[]"#),
            r#"{"objects":{"a":1},"x":2}"#.to_string(),
            format!("[{}]", plain(3).join(",")),
            document(with(3, r#","bad":1e999"#), ""),
            document(with(3, r#","bad":"\ud800""#), ""),
            document(with(5, r#","bad":tru"#), ""),
            document(with(5, r#","bad":[1,]"#), ""),
            // One level deeper than the document allows.
            document(with(2, &deep(126)), ""),
            document(plain(4), "} trailing"),
            document(plain(4), ",").replace(",}", ","),
        ];
        for text in splits.iter().chain(&odd) {
            let whole = Value::parse(text);
            let split = Value::parse_split(text, 3, 0);
            match (&split, &whole) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{text:.300}");
                    assert_eq!(super::tests::text(a), super::tests::text(b));
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text:.300}"),
                _ => panic!("{text:.300}: split {split:?}, whole {whole:?}"),
            }
        }
        for text in &splits {
            assert!(split_parse(text, 3).is_some(), "{text:.300}");
        }
        for text in &odd {
            assert!(split_parse(text, 3).is_none(), "{text:.300}");
        }
        // Small documents are not split at all.
        assert!(Value::parse_in_parts(&splits[0], 4).is_ok());
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_at_its_first_place_in_large_objects_too() {
        let mut input = String::from("{");
        for i in 0..40 {
            input.push_str(&format!("\"k{}\":{i},", i % 25));
        }
        input.push_str("\"z\":true}");
        let ours = Value::parse(&input).unwrap_or(Value::Null);
        let theirs = serde_json::from_str::<serde_json::Value>(&input).unwrap_or_default();
        assert_eq!(text(&ours), theirs.to_string());
        assert_eq!(ours.as_object().map(Map::len), Some(26));
        assert_eq!(ours.get("k3").and_then(Value::as_u64), Some(28));
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let text = r#"{"plain":"abc","esc\u0041":"a\nb"}"#;
        let value = Value::parse(text).unwrap_or(Value::Null);
        let map = value.as_object().cloned().unwrap_or_default();
        let (k0, v0) = &map.entries[0];
        let (k1, v1) = &map.entries[1];
        assert!(matches!(k0, Cow::Borrowed("plain")));
        assert!(matches!(v0, Value::String(Cow::Borrowed("abc"))));
        assert!(matches!(k1, Cow::Owned(k) if k == "escA"));
        assert!(matches!(v1, Value::String(Cow::Owned(s)) if s == "a\nb"));
        assert_eq!(map["missing"], Value::Null);
    }

    #[test]
    fn borrowing_a_serde_json_value_gives_it_back_unchanged() {
        let value = serde_json::json!({"b": [1, "two", {"c": null}], "a": 2.5, "z": false});
        assert_eq!(Value::from_serde(&value).to_serde(), value);
        assert_eq!(Value::from_serde(&value).to_string(), value.to_string());
    }
}
