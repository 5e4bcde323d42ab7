//! The JSON tree validation walks: parsed straight from the artifact's bytes,
//! borrowing its strings, with each object's entries in one flat slice instead
//! of a hash map, and every array, object and escaped string in an [`Arena`]
//! rather than an allocation of its own. An 8 MB artifact takes about a quarter
//! of the memory `serde_json::Value` needs, a tree is freed with its arena in
//! one step instead of node by node, and `objectos verify` spends its time on
//! checks, not on allocating and freeing.
//!
//! It reads exactly what `serde_json::Value` reads (same grammar, same errors,
//! same nesting limit), and a key given twice keeps its last value at its first
//! position, as `serde_json::Map` does with `preserve_order`. [`Value::to_serde`]
//! gives back a `serde_json::Value` for the small parts a model keeps;
//! [`Value::from_serde`] borrows a tree the build merged from fragments.

use std::borrow::Cow;
use std::fmt;

pub use bumpalo::Bump as Arena;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

mod fast;

/// One JSON value, its strings borrowed from the text where they need no
/// unescaping (the others, and its arrays and objects, are in the arena it
/// was read into). Nothing in it needs dropping, and it is copied as plain
/// bytes: an array or object is moved into the arena in one copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(&'a str),
    Array(&'a [Value<'a>]),
    Object(Map<'a>),
}

/// One entry of a JSON object: its key and value.
type Entry<'a> = (&'a str, Value<'a>);

/// A JSON number as serde_json (without arbitrary precision) holds one: an
/// integer that is not negative, a negative one, or a finite float. Unlike
/// `serde_json::Number` it is `Copy`, and so is a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Number::PosInt(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::PosInt(n) => i64::try_from(n).ok(),
            Number::NegInt(n) => Some(n),
            Number::Float(_) => None,
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        Some(match self {
            Number::PosInt(n) => n as f64,
            Number::NegInt(n) => n as f64,
            Number::Float(f) => f,
        })
    }

    /// The same number as serde_json's.
    pub fn to_serde(self) -> serde_json::Number {
        match self {
            Number::PosInt(n) => n.into(),
            Number::NegInt(n) => n.into(),
            // Finite, as every float read is (serde_json reads no other).
            Number::Float(f) => serde_json::Number::from_f64(f).unwrap_or_else(|| 0.into()),
        }
    }

    /// A float as serde_json keeps one: `None` where it is not finite.
    fn from_f64(f: f64) -> Option<Number> {
        f.is_finite().then_some(Number::Float(f))
    }
}

impl From<u64> for Number {
    fn from(n: u64) -> Number {
        Number::PosInt(n)
    }
}

impl From<i64> for Number {
    /// As serde_json: an integer that is not negative is a `PosInt`.
    fn from(n: i64) -> Number {
        u64::try_from(n).map_or(Number::NegInt(n), Number::PosInt)
    }
}

impl From<&serde_json::Number> for Number {
    fn from(n: &serde_json::Number) -> Number {
        match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => Number::PosInt(n),
            (None, Some(n)) => Number::NegInt(n),
            // Neither integer: a float, which serde_json always gives as f64.
            (None, None) => Number::Float(n.as_f64().unwrap_or_default()),
        }
    }
}

impl fmt::Display for Number {
    /// As serde_json writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_serde(), f)
    }
}

/// A JSON object: its entries in document order, each key once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Map<'a> {
    entries: &'a [Entry<'a>],
}

static NULL: Value<'static> = Value::Null;

/// Key equality, compared in line up to 16 bytes (two overlapping words, or
/// the ends and middle of a shorter key): keys are short, and the `memcmp`
/// call of `==` for each key of the same length cost more than the comparison
/// (perf on the verify of a large artifact: 4% of the samples in `memcmp`,
/// most of it for keys of under 16 bytes).
#[inline]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // Three bytes or fewer: first, middle and last are all of them.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        // Two windows, from the start and to the end, overlap and cover it.
        4..=7 => {
            window::<4>(a, 0) == window::<4>(b, 0) && window::<4>(a, n - 4) == window::<4>(b, n - 4)
        }
        8..=16 => {
            window::<8>(a, 0) == window::<8>(b, 0) && window::<8>(a, n - 8) == window::<8>(b, n - 8)
        }
        _ => a == b,
    }
}

/// Key order (byte order, as `str`'s), with the first eight bytes compared
/// as one word where both keys have them: the keys of a large map (an
/// object's fields) are told apart there.
#[inline]
pub(crate) fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len() >= 8 && y.len() >= 8 {
        // Big-endian: the words compare as their bytes do.
        let (p, q) = (
            u64::from_be_bytes(window(x, 0)),
            u64::from_be_bytes(window(y, 0)),
        );
        if p != q {
            return p.cmp(&q);
        }
    }
    a.cmp(b)
}

/// `N` bytes from `at`, as an array (zeroes where the key is shorter: never
/// the case where `same_key` and `key_order` ask).
#[inline(always)]
fn window<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..at + N)
        .and_then(|w| <[u8; N]>::try_from(w).ok())
        .unwrap_or([0; N])
}

impl<'a> Value<'a> {
    /// Parse JSON text as `serde_json::from_str::<serde_json::Value>` would:
    /// with the fast reader, and where that gives up, with serde_json, whose
    /// error is the one returned. The tree's arrays, objects and escaped
    /// strings go into `arena`.
    pub fn parse(text: &'a str, arena: &'a Arena) -> serde_json::Result<Value<'a>> {
        match fast::read(text, &mut Scratch::new(arena)) {
            Some((value, _)) => Ok(value),
            None => Value::parse_with_serde(text, arena),
        }
    }

    /// [`Value::parse`] through serde_json alone.
    fn parse_with_serde(text: &'a str, arena: &'a Arena) -> serde_json::Result<Value<'a>> {
        // What `serde_json::from_str` does, with a seed that holds the scratch space.
        let mut de = serde_json::Deserializer::from_str(text);
        let value = TreeSeed {
            scratch: &mut Scratch::new(arena),
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(value)
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

    pub fn as_array(&self) -> Option<&'a [Value<'a>]> {
        match self {
            Value::Array(items) => Some(*items),
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
            Value::Number(n) => serde_json::Value::Number(n.to_serde()),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_serde).collect())
            }
            Value::Object(map) => serde_json::Value::Object(map.to_serde()),
        }
    }

    /// A tree over a `serde_json::Value`, borrowing its strings; its arrays
    /// and objects go into `arena`.
    pub fn from_serde(value: &'a serde_json::Value, arena: &'a Arena) -> Value<'a> {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.into()),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::Array(
                arena.alloc_slice_fill_iter(items.iter().map(|v| Value::from_serde(v, arena))),
            ),
            // A serde_json map holds each key once already.
            serde_json::Value::Object(map) => Value::Object(Map {
                entries: arena.alloc_slice_fill_iter(
                    map.iter()
                        .map(|(k, v)| (k.as_str(), Value::from_serde(v, arena))),
                ),
            }),
        }
    }
}

impl<'a> Map<'a> {
    /// The value at `key`. A linear scan: objects in a definition have a handful of
    /// keys, and the large ones (fields, grants) are walked, not searched.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| same_key(k, key))
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
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| *k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Value<'a>> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The entries of `stack` from `start` (an object just read), each key
    /// kept once as `serde_json::Map::insert` keeps it (the last value, at
    /// the first position), moved into `arena`; `stack` is cut back to `start`.
    fn from_stack(stack: &mut Vec<Entry<'a>>, start: usize, arena: &'a Arena) -> Map<'a> {
        let entries = match Map::dedupe(&mut stack[start..]) {
            None => {
                let entries = arena.alloc_slice_copy(&stack[start..]);
                stack.truncate(start);
                entries
            }
            Some(dropped) => {
                let kept: Vec<Entry<'a>> = stack
                    .drain(start..)
                    .zip(dropped)
                    .filter_map(|(entry, dropped)| (!dropped).then_some(entry))
                    .collect();
                arena.alloc_slice_copy(&kept)
            }
        };
        Map { entries }
    }

    /// Keep one entry per key, as `serde_json::Map::insert` does: the last value,
    /// at the first position. `None` when every key is there once; otherwise
    /// which entries to leave out.
    fn dedupe(entries: &mut [Entry<'a>]) -> Option<Vec<bool>> {
        let n = entries.len();
        let duplicated = if n <= 16 {
            (0..n).any(|i| (i + 1..n).any(|j| same_key(entries[i].0, entries[j].0)))
        } else if entries
            .windows(2)
            .all(|pair| key_order(pair[0].0, pair[1].0).is_lt())
        {
            // Keys in strictly increasing order are distinct: what a build
            // writes (its maps are sorted), checked in one pass.
            false
        } else {
            // Keys with distinct hashes are distinct: the usual large object
            // (an object's fields) is settled without sorting its keys.
            let mut hashes: Vec<u64> = entries
                .iter()
                .map(|(k, _)| super::keys::fnv1a(k.as_bytes()))
                .collect();
            hashes.sort_unstable();
            hashes.windows(2).any(|pair| pair[0] == pair[1])
        };
        if !duplicated {
            return None;
        }
        // Indices of the entries, ordered by key and then by position.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| entries[a].0.cmp(entries[b].0).then(a.cmp(&b)));
        let mut dropped = vec![false; n];
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && entries[order[end]].0 == entries[order[start]].0 {
                end += 1;
            }
            if end - start > 1 {
                let first = order[start];
                let last = order[end - 1];
                let value = std::mem::replace(&mut entries[last].1, Value::Null);
                entries[first].1 = value;
                for &i in &order[start + 1..end] {
                    dropped[i] = true;
                }
            }
            start = end;
        }
        Some(dropped)
    }
}

impl<'m, 'a> IntoIterator for &'m Map<'a> {
    type Item = (&'m str, &'m Value<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'m, Entry<'a>>,
        fn(&'m Entry<'a>) -> (&'m str, &'m Value<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (*k, v))
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

/// The elements and entries of the arrays and objects being read, innermost
/// last: each array or object is moved into the arena, at its exact size,
/// when it ends, instead of growing a vector of its own. The fast reader
/// reads on the same stacks (see [`Element::parse_on`]).
pub(crate) struct Scratch<'de> {
    arena: &'de Arena,
    items: Vec<Value<'de>>,
    entries: Vec<Entry<'de>>,
    /// How deep the arrays and objects being read are nested, and the
    /// deepest they were.
    depth: usize,
    deepest: usize,
}

impl<'de> Scratch<'de> {
    /// Empty stacks, for trees kept in `arena`; room for an object of an
    /// artifact (its fields, or its largest field's keys and options) from
    /// the start, as one is read after another, each on new stacks.
    pub(crate) fn new(arena: &'de Arena) -> Scratch<'de> {
        Scratch {
            arena,
            items: Vec::with_capacity(32),
            entries: Vec::with_capacity(64),
            depth: 0,
            deepest: 0,
        }
    }

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
        Ok(Value::String(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(self.scratch.arena.alloc_str(v)))
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
        let items = self
            .scratch
            .arena
            .alloc_slice_copy(&self.scratch.items[start..]);
        self.scratch.items.truncate(start);
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value<'de>, A::Error> {
        self.scratch.enter();
        let start = self.scratch.entries.len();
        while let Some(key) = access.next_key_seed(KeySeed {
            arena: self.scratch.arena,
        })? {
            let value = access.next_value_seed(TreeSeed {
                scratch: &mut *self.scratch,
            })?;
            self.scratch.entries.push((key, value));
        }
        self.scratch.depth -= 1;
        let scratch = &mut *self.scratch;
        Ok(Value::Object(Map::from_stack(
            &mut scratch.entries,
            start,
            scratch.arena,
        )))
    }
}

/// Below this size a document is parsed on one thread: starting threads and
/// the skeleton pass would cost more than they save.
const SPLIT_FROM: usize = 1 << 20;

/// The deepest nesting of arrays and objects serde_json reads (its recursion
/// limit); a test holds it to serde_json's behaviour.
const MAX_NESTING: usize = 127;

/// A large document read in outline: its top level as a tree, except the
/// elements of `objects` (nearly all of an artifact), which are only delimited
/// by a scan of the text and parsed one at a time later, on as many threads as
/// validation walks objects on, each tree's arena emptied for the next. The
/// whole tree of an 8 MB artifact (tens of megabytes of fresh pages to zero) never
/// exists, and the one pass over all of the text that no thread can share is
/// a plain byte scan instead of a parse.
///
/// The scan only reads the structure it delimits (the top level, the
/// `objects` array, each element's own entries); every value it delimits is
/// then parsed as [`Value::parse`] parses (the fast reader, serde_json where
/// that gives up), so a document the outline takes reads exactly as
/// [`Value::parse`] reads it, and one it cannot take (a syntax error anywhere,
/// an element that is not an object) is left to that parse and its message.
pub struct Outline<'a> {
    /// The document, its `objects` an empty array.
    document: Value<'a>,
    objects: Vec<Element<'a>>,
}

/// One element of an [`Outline`]'s `objects`: an object, as text.
pub struct Element<'a> {
    text: &'a str,
    /// The text of the value of its last `name` entry, if it has one.
    name: Option<&'a str>,
}

impl<'a> Outline<'a> {
    /// The outline of a document of at least [`SPLIT_FROM`] bytes, or `None`
    /// where [`Value::parse`] must decide: a smaller document, a syntax error
    /// anywhere, a top level that is not an object, no `objects`, an `objects`
    /// that is not an array of objects or is given twice. The top level's
    /// trees go into `arena`.
    pub fn read(text: &'a str, arena: &'a Arena) -> Option<Outline<'a>> {
        Outline::read_from(text, SPLIT_FROM, arena)
    }

    pub(crate) fn read_from(text: &'a str, from: usize, arena: &'a Arena) -> Option<Outline<'a>> {
        if text.len() < from {
            return None;
        }
        let mut scan = Scan { text, at: 0 };
        let mut entries = Vec::new();
        let mut objects = None;
        let mut scratch = Scratch::new(arena);
        scan.expect(b'{')?;
        if !scan.next_is(b'}') {
            loop {
                let key = parse_key(scan.string()?, arena)?;
                scan.expect(b':')?;
                if key == "objects" {
                    if objects.is_some() {
                        return None;
                    }
                    objects = Some(scan.elements()?);
                    entries.push((key, Value::Array(&[])));
                } else {
                    let value = parse_part(scan.value()?, &mut scratch)?;
                    // The value sits inside the document's object.
                    if scratch.deepest + 1 > MAX_NESTING {
                        return None;
                    }
                    entries.push((key, value));
                }
                if !scan.next_is(b',') {
                    scan.expect(b'}')?;
                    break;
                }
            }
        }
        scan.skip_whitespace();
        if scan.at != text.len() {
            return None;
        }
        Some(Outline {
            document: Value::Object(Map::from_stack(&mut entries, 0, arena)),
            objects: objects?,
        })
    }

    /// The document without its objects (`objects` is an empty array).
    pub fn document(&self) -> &Value<'a> {
        &self.document
    }

    /// The elements of `objects`, in order.
    pub fn objects(&self) -> &[Element<'a>] {
        &self.objects
    }
}

impl<'a> Element<'a> {
    /// What `element.get("name").and_then(Value::as_str)` gives once parsed,
    /// or `None` (also when the name's text does not parse, which
    /// [`Element::parse`] then reports).
    pub fn name(&self) -> Option<Cow<'a, str>> {
        let text = self.name?;
        // A plain string is its own text between the quotes.
        if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
            && !inner.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
        {
            return Some(Cow::Borrowed(inner));
        }
        match serde_json::from_str::<serde_json::Value>(text).ok()? {
            serde_json::Value::String(name) => Some(Cow::Owned(name)),
            _ => None,
        }
    }

    /// The element as the whole document's parse holds it, or `None` where
    /// that parse would fail: a syntax error, a number out of range, a string
    /// serde_json refuses, nesting deeper than the limit counted from the
    /// document's top. Its trees go into `arena`.
    pub fn parse<'s>(&self, arena: &'s Arena) -> Option<Value<'s>>
    where
        'a: 's,
    {
        self.parse_on(&mut Scratch::new(arena))
    }

    /// [`Element::parse`], on the stacks (and into the arena) of `scratch`.
    pub(crate) fn parse_on<'s>(&self, scratch: &mut Scratch<'s>) -> Option<Value<'s>>
    where
        'a: 's,
    {
        let value = parse_part(self.text, scratch)?;
        // Read alone, the element is two levels shallower than in the
        // document (the document, `objects`).
        if scratch.deepest + 2 > MAX_NESTING {
            return None;
        }
        Some(value)
    }
}

/// One value's text, parsed on its own; `scratch.deepest` is then its nesting.
fn parse_part<'a>(text: &'a str, scratch: &mut Scratch<'a>) -> Option<Value<'a>> {
    if let Some((value, deepest)) = fast::read(text, scratch) {
        scratch.deepest = deepest;
        return Some(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    scratch.depth = 0;
    scratch.deepest = 0;
    let value = TreeSeed { scratch }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// A key's text, quotes included, as the key it spells (in `arena` if it
/// has escapes).
fn parse_key<'a>(text: &'a str, arena: &'a Arena) -> Option<&'a str> {
    let mut de = serde_json::Deserializer::from_str(text);
    let key = KeySeed { arena }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(key)
}

/// A cursor over JSON text that finds where values begin and end without
/// reading them: strings by their quotes (skipping escapes), arrays and
/// objects by their brackets (outside strings). What lies between is parsed
/// later, and refused there if it is not JSON.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// Past whitespace, whether `byte` comes next (and if so, past it too).
    fn next_is(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.bytes().get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.next_is(byte).then_some(())
    }

    /// Past whitespace, a string: its text, quotes included.
    fn string(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        if self.bytes().get(start) != Some(&b'"') {
            return None;
        }
        self.at = string_end(self.bytes(), start + 1)?;
        self.text.get(start..self.at)
    }

    /// Past whitespace, one value: its text. Only where it ends is checked.
    fn value(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let bytes = self.bytes();
        let start = self.at;
        self.at = match bytes.get(start)? {
            b'"' => string_end(bytes, start + 1)?,
            b'{' | b'[' => container_end(bytes, start + 1)?,
            _ => {
                let mut end = start;
                while let Some(b) = bytes.get(end) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    end += 1;
                }
                end
            }
        };
        self.text.get(start..self.at)
    }

    /// Past whitespace, an array of objects: each one delimited, and the text
    /// of its last `name` entry's value found.
    fn elements(&mut self) -> Option<Vec<Element<'a>>> {
        self.expect(b'[')?;
        let mut elements = Vec::new();
        if self.next_is(b']') {
            return Some(elements);
        }
        loop {
            self.skip_whitespace();
            let start = self.at;
            self.expect(b'{')?;
            let mut name = None;
            if !self.next_is(b'}') {
                loop {
                    let key = self.string()?;
                    self.expect(b':')?;
                    let value = self.value()?;
                    if key == "\"name\""
                        || (key.contains('\\')
                            && serde_json::from_str::<String>(key).ok()? == "name")
                    {
                        name = Some(value);
                    }
                    if !self.next_is(b',') {
                        self.expect(b'}')?;
                        break;
                    }
                }
            }
            elements.push(Element {
                text: self.text.get(start..self.at)?,
                name,
            });
            if !self.next_is(b',') {
                self.expect(b']')?;
                return Some(elements);
            }
        }
    }
}

/// Where the string whose text starts at `at` (past its opening quote) ends:
/// just past its closing quote. Most strings of an artifact are short keys
/// and labels, so it looks at eight bytes at a time in a plain word rather
/// than calling a search routine per string.
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    loop {
        while let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            // A zero byte in `word ^ (ONES * b)` is a byte equal to `b`; the
            // lowest flagged byte is always a true one.
            let quote = word ^ (ONES * u64::from(b'"'));
            let escape = word ^ (ONES * u64::from(b'\\'));
            let found = ((quote.wrapping_sub(ONES) & !quote)
                | (escape.wrapping_sub(ONES) & !escape))
                & HIGHS;
            if found != 0 {
                at += (found.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        match bytes.get(at)? {
            b'"' => return Some(at + 1),
            // An escape: the next byte is never the end.
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// Where the array or object whose inside starts at `from` ends: just past the
/// bracket that closes it. Brackets are counted, not matched: a mismatch is
/// left to serde_json, which reads every container this delimits.
///
/// Most of an artifact's bytes lie inside the objects' `fields`, which the
/// outline only delimits, so this reads 64 bytes at a time: which of them are
/// quotes, backslashes and brackets ([`Marks`]), which are inside strings
/// (each quote flips in or out), and how the brackets outside strings change
/// the depth. Only a block where the container may close is looked at bracket
/// by bracket, and only a block with a backslash (an escaped quote does not
/// flip) byte by byte.
fn container_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut depth = 1usize;
    // Whether `at` is inside a string (past its opening quote).
    let mut in_string = false;
    while let Some(block) = bytes.get(at..at + 64) {
        let marks = Marks::of(block);
        if marks.escape != 0 {
            let block_end = at + 64;
            if in_string {
                at = string_end(bytes, at)?;
                in_string = false;
            }
            match bytes_until(bytes, at, block_end, &mut depth)? {
                Ok(end) => return Some(end),
                Err(next) => {
                    at = next;
                    continue;
                }
            }
        }
        // Bit i: byte i is inside a string, its opening quote included and
        // its closing quote not.
        let inside = prefix_xor(marks.quote) ^ if in_string { !0 } else { 0 };
        let opens = marks.open & !inside;
        let closes = marks.close & !inside;
        if (closes.count_ones() as usize) < depth {
            // Fewer closing brackets than are open: it cannot close here.
            depth = depth + opens.count_ones() as usize - closes.count_ones() as usize;
        } else {
            let mut brackets = opens | closes;
            while brackets != 0 {
                let bit = brackets & brackets.wrapping_neg();
                if closes & bit != 0 {
                    depth -= 1;
                    if depth == 0 {
                        return Some(at + bit.trailing_zeros() as usize + 1);
                    }
                } else {
                    depth += 1;
                }
                brackets &= brackets - 1;
            }
        }
        in_string = inside >> 63 == 1;
        at += 64;
    }
    if in_string {
        at = string_end(bytes, at)?;
    }
    bytes_until(bytes, at, usize::MAX, &mut depth)?.ok()
}

/// Byte by byte from `at` (outside strings) up to `until`, `depth` containers
/// open: `Ok` where the outermost closes (just past it), `Err` where it
/// stopped short of `until` or past it (never inside a string), `None` at the
/// text's end.
fn bytes_until(
    bytes: &[u8],
    mut at: usize,
    until: usize,
    depth: &mut usize,
) -> Option<Result<usize, usize>> {
    while at < until {
        match bytes.get(at)? {
            b'"' => {
                at = string_end(bytes, at + 1)?;
                continue;
            }
            b'{' | b'[' => *depth += 1,
            b'}' | b']' => {
                *depth -= 1;
                if *depth == 0 {
                    return Some(Ok(at + 1));
                }
            }
            _ => {}
        }
        at += 1;
    }
    Some(Err(at))
}

/// Bit i of the result: whether an odd number of bits `0..=i` of `bits` are set.
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

/// Which bytes of a 64-byte block are quotes, backslashes, opening brackets
/// (`{`, `[`) and closing ones (`}`, `]`): bit i for byte i.
#[derive(Debug, Default, PartialEq)]
struct Marks {
    quote: u64,
    escape: u64,
    open: u64,
    close: u64,
}

impl Marks {
    /// `block`: 64 bytes.
    #[cfg(target_arch = "x86_64")]
    fn of(block: &[u8]) -> Marks {
        use safe_arch::{
            bitor_m128i, cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        };
        let mut marks = Marks::default();
        let mask = |bytes: m128i, byte: u8| {
            let equal = cmp_eq_mask_i8_m128i(bytes, set_splat_i8_m128i(byte as i8));
            u64::from(move_mask_i8_m128i(equal) as u16)
        };
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let Ok(chunk) = <[u8; 16]>::try_from(chunk) else {
                continue;
            };
            let bytes = m128i::from(chunk);
            // `[` and `{` differ only in bit 5 (0x20), as `]` and `}` do.
            let folded = bitor_m128i(bytes, set_splat_i8_m128i(0x20));
            let shift = 16 * i;
            marks.quote |= mask(bytes, b'"') << shift;
            marks.escape |= mask(bytes, b'\\') << shift;
            marks.open |= mask(folded, b'{') << shift;
            marks.close |= mask(folded, b'}') << shift;
        }
        marks
    }

    /// `block`: 64 bytes.
    #[cfg(not(target_arch = "x86_64"))]
    fn of(block: &[u8]) -> Marks {
        Marks::of_bytes(block)
    }

    /// [`Marks::of`], a byte at a time.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn of_bytes(block: &[u8]) -> Marks {
        let mut marks = Marks::default();
        for (i, byte) in block.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            match byte {
                b'"' => marks.quote |= bit,
                b'\\' => marks.escape |= bit,
                b'{' | b'[' => marks.open |= bit,
                b'}' | b']' => marks.close |= bit,
                _ => {}
            }
        }
        marks
    }
}

/// A key, borrowed from the text when it has no escapes, in the arena when
/// it has.
struct KeySeed<'de> {
    arena: &'de Arena,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'de> {
    type Value = &'de str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'de str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'de> {
    type Value = &'de str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'de str, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'de str, E> {
        Ok(self.arena.alloc_str(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as compact JSON, written from its own entries (not through
    /// `to_serde`, whose map would hide a repeated key).
    pub(super) fn text(value: &Value<'_>) -> String {
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
            let arena = Arena::new();
            let ours = Value::parse(input, &arena);
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

    /// `same_key` and `key_order` answer as `==` and `cmp` do, for keys of
    /// every length up to past the longest compared in words, differing at
    /// each position (by one bit, by a character of two bytes, and by one
    /// missing), and equal.
    #[test]
    fn keys_compare_in_words_as_strings_do() {
        let mut keys = vec![String::new(), "é".to_string(), "éa".to_string()];
        for n in 1..=24usize {
            let base: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            keys.push(base.clone());
            for at in 0..n {
                let mut bytes = base.clone().into_bytes();
                bytes[at] ^= 1;
                keys.push(String::from_utf8(bytes).unwrap());
                let mut wide = base.clone();
                wide.replace_range(at..=at, "é");
                keys.push(wide);
                keys.push(format!("{}{}", &base[..at], &base[at + 1..]));
            }
        }
        let mut compared = 0;
        for a in &keys {
            for b in &keys {
                assert_eq!(same_key(a, b), a == b, "{a:?} {b:?}");
                assert_eq!(key_order(a, b), a.cmp(b), "{a:?} {b:?}");
                compared += 1;
            }
        }
        assert!(compared > 500_000);
    }

    /// A number reads as serde_json's does: the same kind, the same answers
    /// to `as_u64`, `as_i64` and `as_f64`, written the same.
    #[test]
    fn numbers_answer_as_serde_jsons_do() {
        let texts = [
            "0",
            "7",
            "-7",
            "-0",
            "1.5e3",
            "0.1",
            "-2.5",
            "1e308",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678",
            "1234567890123456789",
        ];
        for text in texts {
            let arena = Arena::new();
            let Ok(Value::Number(ours)) = Value::parse(text, &arena) else {
                panic!("{text} is not a number here");
            };
            let theirs: serde_json::Number = serde_json::from_str(text).unwrap_or_else(|e| {
                panic!("{text}: {e}");
            });
            assert_eq!(ours.as_u64(), theirs.as_u64(), "{text}");
            assert_eq!(ours.as_i64(), theirs.as_i64(), "{text}");
            assert_eq!(ours.as_f64(), theirs.as_f64(), "{text}");
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
            assert_eq!(Number::from(&theirs), ours, "{text}");
        }
        // Integers and floats are told apart, as serde_json tells them.
        let arena = Arena::new();
        assert!(matches!(
            Value::parse("-3", &arena),
            Ok(Value::Number(Number::NegInt(-3)))
        ));
        assert!(matches!(
            Value::parse("3", &arena),
            Ok(Value::Number(Number::PosInt(3)))
        ));
        assert!(matches!(
            Value::parse("3.0", &arena),
            Ok(Value::Number(Number::Float(_)))
        ));
    }

    #[test]
    fn the_nesting_limit_is_serde_jsons() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_NESTING)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_NESTING + 1)).is_err());
        let arena = Arena::new();
        assert!(Value::parse(&nested(MAX_NESTING), &arena).is_ok());
        assert!(Value::parse(&nested(MAX_NESTING + 1), &arena).is_err());
    }

    /// Read in outline, a document reads to the tree the plain parse reads:
    /// its elements parsed one by one and put back give the same tree, and
    /// each element's name is the one its tree holds. A document the outline
    /// cannot take (broken anywhere, an `objects` that is not an array of
    /// objects, nesting past the limit) gives no outline or an element that
    /// does not parse, so the plain parse decides. The controls: the ordinary
    /// documents are taken, the odd ones are not.
    #[test]
    fn a_document_read_in_outline_reads_as_it_reads_whole() {
        let object = |i: usize, extra: &str| {
            format!(
                r#"{{"name":"o{i}","label":"L\u00e9 \"{i}\" {{[","fields":{{"f":{{"type":"text","max":{i}.5,"options":[1,"two",{{"k":null,"name":"inner"}}]}},"f":{{"type":"number"}}}}{extra}}}"#
            )
        };
        let document = |objects: Vec<String>, tail: &str| {
            format!(
                "{{\"manifest\":{{\"id\":\"a\"}}, \"objects\" : [ {} ] ,\"manifest\":{{\"id\":\"b\"}},\"x\":[1,2]{tail}}}\n",
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
        let taken = [
            document(plain(9), ""),
            document(plain(1), ""),
            document(Vec::new(), ""),
            document(vec!["{}".into(), " { } ".into()], ""),
            document(with(4, r#","name":"again""#), ""),
            document(with(5, r#","n\u0061me":"escaped""#), ""),
            document(with(6, r#","name":7"#), ""),
            // Nesting of 125 inside an element: 127 in the document, the limit.
            document(with(2, &deep(125)), ""),
            // Nesting of 126 at the top level: 127 in the document.
            document(plain(2), &deep(127)),
        ];
        let odd = [
            document(plain(9), r#","objects":[]"#),
            "{}".to_string(),
            document(plain(9), r#","obj\u0065cts":[]"#),
            r#"{"objects":{"a":1},"x":2}"#.to_string(),
            r#"{"objects":[{"name":"a"},1]}"#.to_string(),
            format!("[{}]", plain(3).join(",")),
            document(with(3, r#","bad":1e999"#), ""),
            document(with(3, r#","bad":"\ud800""#), ""),
            document(with(3, ",\"bad\":\"a\u{1}b\""), ""),
            document(with(5, r#","bad":tru"#), ""),
            document(with(5, r#","bad":[1,]"#), ""),
            document(with(5, r#","bad":[1}"#), ""),
            document(with(5, r#","bad":1 2"#), ""),
            // One level deeper than the document allows.
            document(with(2, &deep(126)), ""),
            document(plain(2), &deep(128)),
            document(plain(4), "} trailing"),
            document(plain(4), ",").replace(",}", ","),
            document(plain(4), "").replace("] ,", ",] ,"),
            document(plain(4), "").replace(",\"x\"", "\"x\""),
            document(plain(4), ",\"y\":1x"),
        ];
        let arena = Arena::new();
        for text in &taken {
            let whole = Value::parse(text, &arena).unwrap_or_else(|e| panic!("{e}: {text:.300}"));
            let outline = Outline::read_from(text, 0, &arena)
                .unwrap_or_else(|| panic!("no outline of {text:.300}"));
            let mut elements = Vec::new();
            for (i, element) in outline.objects().iter().enumerate() {
                let tree = element
                    .parse(&arena)
                    .unwrap_or_else(|| panic!("element {i} of {text:.300}"));
                assert_eq!(
                    element.name().as_deref(),
                    tree.get("name").and_then(Value::as_str),
                    "{text:.300}"
                );
                elements.push(tree);
            }
            let elements: &[Value<'_>] = arena.alloc_slice_fill_iter(elements);
            let assembled = match outline.document() {
                Value::Object(map) => Value::Object(Map {
                    entries: arena.alloc_slice_fill_iter(map.entries.iter().map(|(key, value)| {
                        let value = if *key == "objects" {
                            Value::Array(elements)
                        } else {
                            *value
                        };
                        (*key, value)
                    })),
                }),
                other => *other,
            };
            assert_eq!(assembled, whole, "{text:.300}");
            assert_eq!(super::tests::text(&assembled), super::tests::text(&whole));
        }
        for text in &odd {
            let taken = Outline::read_from(text, 0, &arena)
                .is_some_and(|outline| outline.objects().iter().all(|e| e.parse(&arena).is_some()));
            assert!(!taken, "{text:.300}");
        }
        // The odd ones that are JSON at all still read whole.
        assert!(Value::parse(&odd[0], &arena).is_ok());
        assert!(Value::parse(&odd[4], &arena).is_ok());
        assert!(Value::parse(&odd[6], &arena).is_err());
        // Small documents are not read in outline.
        assert!(Outline::read(&taken[0], &arena).is_none());
    }

    /// Where a container ends, read 64 bytes at a time, is where reading byte
    /// by byte says it ends, or neither says it ends: on text of quotes,
    /// backslashes and brackets in every arrangement (escapes and strings
    /// across blocks' edges, brackets inside strings, blocks with and without
    /// a backslash), from several places in it. The controls: many of the
    /// texts close, many in their second block or later, many do not.
    #[test]
    fn containers_end_where_reading_byte_by_byte_says_they_end() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Mostly plain bytes, so that many blocks hold no backslash.
        let pick = |r: u64, escapes: bool| match r % 64 {
            0..=5 => b'"',
            6..=8 => b'{',
            9..=11 => b'}',
            12..=13 => b'[',
            14..=15 => b']',
            16 if escapes => b'\\',
            17..=19 => b',',
            _ => b'a' + (r % 7) as u8,
        };
        let (mut closed, mut late, mut open) = (0, 0, 0);
        for case in 0..20_000 {
            let len = (next() % 600) as usize;
            let escapes = case % 3 != 0;
            let bytes: Vec<u8> = (0..len).map(|_| pick(next(), escapes)).collect();
            for at in [0, 1, (next() % 100) as usize, len / 2] {
                if at > len {
                    continue;
                }
                let expected = bytes_until(&bytes, at, usize::MAX, &mut 1).and_then(Result::ok);
                assert_eq!(
                    container_end(&bytes, at),
                    expected,
                    "from {at} of {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                match expected {
                    Some(end) if end - at > 64 => late += 1,
                    Some(_) => closed += 1,
                    None => open += 1,
                }
            }
        }
        assert!(
            closed > 1_000 && late > 1_000 && open > 1_000,
            "{closed} {late} {open}"
        );
        // The block's marks, on every byte value.
        for _ in 0..2_000 {
            let block: Vec<u8> = (0..64)
                .map(|_| match next() % 4 {
                    0 => pick(next(), true),
                    _ => next() as u8,
                })
                .collect();
            assert_eq!(Marks::of(&block), Marks::of_bytes(&block), "{block:?}");
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_at_its_first_place_in_large_objects_too() {
        let mut input = String::from("{");
        for i in 0..40 {
            input.push_str(&format!("\"k{}\":{i},", i % 25));
        }
        input.push_str("\"z\":true}");
        let arena = Arena::new();
        let ours = Value::parse(&input, &arena).unwrap_or(Value::Null);
        let theirs = serde_json::from_str::<serde_json::Value>(&input).unwrap_or_default();
        assert_eq!(text(&ours), theirs.to_string());
        assert_eq!(ours.as_object().map(Map::len), Some(26));
        assert_eq!(ours.get("k3").and_then(Value::as_u64), Some(28));
        // In sorted order (as a build writes keys), a key given twice in a
        // row is caught too.
        let mut sorted: Vec<String> = (0..40).map(|i| format!("\"field_{i:02}\":{i}")).collect();
        sorted.insert(21, "\"field_20\":99".to_string());
        let input = format!("{{{}}}", sorted.join(","));
        let ours = Value::parse(&input, &arena).unwrap_or(Value::Null);
        let theirs = serde_json::from_str::<serde_json::Value>(&input).unwrap_or_default();
        assert_eq!(text(&ours), theirs.to_string());
        assert_eq!(ours.as_object().map(Map::len), Some(40));
        assert_eq!(ours.get("field_20").and_then(Value::as_u64), Some(99));
        // The control: as many distinct keys keep them all, in order.
        let distinct: Vec<String> = (0..40).map(|i| format!("\"field_{i:02}\":{i}")).collect();
        let input = format!("{{{}}}", distinct.join(","));
        let ours = Value::parse(&input, &arena).unwrap_or(Value::Null);
        assert_eq!(text(&ours), input);
        assert_eq!(ours.as_object().map(Map::len), Some(40));
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_text() {
        let text = r#"{"plain":"abc","esc\u0041":"a\nb"}"#;
        let in_text = |s: &str| text.as_bytes().as_ptr_range().contains(&s.as_ptr());
        // serde_json's reader, where the fast one gives up, borrows too.
        for with_serde in [false, true] {
            let arena = Arena::new();
            let value = if with_serde {
                Value::parse_with_serde(text, &arena)
            } else {
                Value::parse(text, &arena)
            }
            .unwrap_or(Value::Null);
            let map = value.as_object().copied().unwrap_or_default();
            let [(k0, v0), (k1, v1)] = map.entries else {
                panic!("two entries, not {map:?}");
            };
            assert!(*k0 == "plain" && in_text(k0));
            assert!(matches!(v0, Value::String(s) if *s == "abc" && in_text(s)));
            // The escaped ones are unescaped into the arena.
            assert!(*k1 == "escA" && !in_text(k1));
            assert!(matches!(v1, Value::String(s) if *s == "a\nb" && !in_text(s)));
            assert_eq!(map["missing"], Value::Null);
        }
    }

    #[test]
    fn borrowing_a_serde_json_value_gives_it_back_unchanged() {
        let value = serde_json::json!({"b": [1, "two", {"c": null}], "a": 2.5, "z": false});
        let arena = Arena::new();
        assert_eq!(Value::from_serde(&value, &arena).to_serde(), value);
        assert_eq!(
            Value::from_serde(&value, &arena).to_string(),
            value.to_string()
        );
    }
}
