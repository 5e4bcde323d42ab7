//! Validation: every problem of a definition at once, each with its JSON pointer and
//! source file, and a message that says how to fix it. A definition that passes
//! becomes a [`Model`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::build::SourceMap;
use crate::artifact::json::{self, Map, Value};
use crate::artifact::keys;
use crate::model::filter::Filter;
use crate::model::*;

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Issue {
    /// RFC 6901 JSON pointer into the merged definition
    pub pointer: String,
    /// The source file the pointer falls in, when known
    pub file: Option<PathBuf>,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// Top-level upstream collections carried verbatim and not enforced, with counts.
    pub carried: Vec<(String, usize)>,
    pub model: Option<Model>,
}

struct Walker<'a> {
    sources: &'a SourceMap,
    strict: bool,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    /// Every object name the definition declares, valid or not: a reference to a
    /// declared but invalid object is not reported again. Shared by the
    /// walker's forks.
    declared: Arc<BTreeSet<String>>,
    /// Permission names known up front: objectos's, upstream's, and the app's
    /// declared capabilities. Shared by the walker's forks.
    perms_known: Arc<BTreeSet<String>>,
    /// Names used without a declaration, in order of first use.
    undeclared: Vec<String>,
    /// For each of `undeclared`, the index in `warnings` of the warning its
    /// first use gave (`usize::MAX` where this walker gave none).
    undeclared_warnings: Vec<usize>,
    /// Grants on upstream platform objects, dropped.
    ignored: Vec<IgnoredGrant>,
}

/// A JSON pointer to an entry of a collection under `parent` (a field of an
/// object, an option of a field), written out only when an issue names it:
/// most entries have none, and formatting every pointer cost a seventh of
/// validating a large artifact.
#[derive(Clone, Copy)]
struct Below<'a> {
    parent: &'a dyn fmt::Display,
    collection: &'static str,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl fmt::Display for Below<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/", self.parent, self.collection)?;
        match self.step {
            Step::Key(key) => f.write_str(&esc(key)),
            Step::Index(i) => write!(f, "{i}"),
        }
    }
}

fn esc(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

fn is_snake(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// `com.example.crm`: two or more dot-separated labels of lower-case letters,
/// digits, `-` and `_`.
fn is_reverse_dns(id: &str) -> bool {
    let parts: Vec<&str> = id.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
}

fn type_name(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Walker<'a> {
    /// A walker that has found nothing yet.
    fn new(sources: &'a SourceMap, strict: bool) -> Self {
        Walker {
            sources,
            strict,
            errors: Vec::new(),
            warnings: Vec::new(),
            declared: Arc::default(),
            perms_known: Arc::default(),
            undeclared: Vec::new(),
            undeclared_warnings: Vec::new(),
            ignored: Vec::new(),
        }
    }

    fn issue(&self, pointer: &(impl fmt::Display + ?Sized), message: String) -> Issue {
        let pointer = pointer.to_string();
        Issue {
            file: self.sources.file_of(&pointer).map(Path::to_path_buf),
            pointer,
            message,
        }
    }

    fn err(&mut self, pointer: &(impl fmt::Display + ?Sized), message: impl Into<String>) {
        let issue = self.issue(pointer, message.into());
        self.errors.push(issue);
    }

    fn warn(&mut self, pointer: &(impl fmt::Display + ?Sized), message: impl Into<String>) {
        let issue = self.issue(pointer, message.into());
        self.warnings.push(issue);
    }

    /// Fail closed: a construct that changes access and that objectos does not enforce.
    fn unenforced(&mut self, pointer: &(impl fmt::Display + ?Sized), construct: &str) {
        self.err(
            pointer,
            format!(
                "{construct} is not enforced by objectos, and ignoring it would change who may read or write what; remove it, or express the rule with what objectos enforces (ownership, permission sets, sharing rules)"
            ),
        );
    }

    /// Note the permission names a grant or a `requiredPermissions` uses. Known
    /// names pass; any other becomes an opaque capability, granted and required
    /// like a declared one, with a warning the first time (a typo in a grant
    /// grants nothing, and in a requirement gates more, so neither widens).
    fn permissions(&mut self, list: &[String], pointer: &(impl fmt::Display + ?Sized)) {
        for (i, p) in list.iter().enumerate() {
            let here = format!("{pointer}/{i}");
            if p.trim().is_empty() {
                self.err(&here, "a permission name is empty");
                continue;
            }
            if self.perms_known.contains(p) || self.undeclared.contains(p) {
                continue;
            }
            let known: Vec<&str> = self.perms_known.iter().map(String::as_str).collect();
            let hint = keys::suggest(p, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.warn(
                &here,
                format!("`{p}` is not declared under `capabilities`; objectos treats it as an opaque capability, granted and required like a declared one{hint}"),
            );
            self.undeclared.push(p.clone());
            self.undeclared_warnings.push(self.warnings.len() - 1);
        }
    }

    /// A walker for a part of the definition walked on another thread: what this
    /// one knows, none of what it found.
    fn fork(&self) -> Walker<'a> {
        Walker {
            sources: self.sources,
            strict: self.strict,
            errors: Vec::new(),
            warnings: Vec::new(),
            declared: Arc::clone(&self.declared),
            perms_known: Arc::clone(&self.perms_known),
            undeclared: self.undeclared.clone(),
            undeclared_warnings: vec![usize::MAX; self.undeclared.len()],
            ignored: Vec::new(),
        }
    }

    /// Take in what a fork found, as if this walker had walked its part itself
    /// (forks are joined in the order of their parts): an undeclared name an
    /// earlier part already warned about loses its second warning.
    fn join(&mut self, part: Walker<'a>) {
        let mut repeated = vec![false; part.warnings.len()];
        for (name, &at) in part.undeclared.iter().zip(&part.undeclared_warnings) {
            if at == usize::MAX {
                continue;
            }
            if self.undeclared.contains(name) {
                if let Some(flag) = repeated.get_mut(at) {
                    *flag = true;
                }
            } else {
                self.undeclared.push(name.clone());
                self.undeclared_warnings.push(usize::MAX);
            }
        }
        self.errors.extend(part.errors);
        self.warnings.extend(
            part.warnings
                .into_iter()
                .zip(repeated)
                .filter(|(_, repeated)| !repeated)
                .map(|(issue, _)| issue),
        );
        self.ignored.extend(part.ignored);
    }

    /// Report a reference to an object that is not declared at all.
    fn missing_object(&mut self, pointer: &(impl fmt::Display + ?Sized), name: &str) {
        if !self.declared.contains(name) {
            let hint = keys::suggest(
                name,
                &self.declared.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
            self.err(
                pointer,
                format!("`{name}` is not an object of this artifact{hint}"),
            );
        }
    }

    fn unknown_keys(
        &mut self,
        map: &Map<'_>,
        pointer: &(impl fmt::Display + ?Sized),
        known: &keys::Known,
        what: &str,
    ) {
        for key in map.keys() {
            self.unknown_key(key, pointer, known, what);
        }
    }

    /// [`Walker::unknown_keys`] for one key.
    fn unknown_key(
        &mut self,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        known: &keys::Known,
        what: &str,
    ) {
        if known.contains(key) || keys::is_envelope(key) {
            return;
        }
        let message = format!(
            "`{key}` is not a key of {what} in protocol {PROTOCOL_MAJOR}{}",
            keys::suggest(key, known.sorted)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default()
        );
        let here = format!("{pointer}/{}", esc(key));
        if self.strict {
            self.err(&here, message);
        } else {
            self.warn(&here, message);
        }
    }

    fn object<'v, 'j>(
        &mut self,
        value: &'v Value<'j>,
        pointer: &(impl fmt::Display + ?Sized),
        what: &str,
    ) -> Option<&'v Map<'j>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.err(
                    pointer,
                    format!("{what} must be an object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn opt_str<'v>(
        &mut self,
        map: &'v Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<&'v str> {
        self.str_of(map.get(key), key, pointer)
    }

    /// [`Walker::opt_str`] of the value found for `key`.
    #[inline]
    fn str_of<'v>(
        &mut self,
        value: Option<&'v Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<&'v str> {
        self.typed(value, key, pointer, |value| match value {
            Value::String(s) => Ok(s.as_ref()),
            other => Err(format!("a string, not {}", type_name(other))),
        })
    }

    /// The value found for `key` as `read` takes it: none where there is
    /// none (or null), and an error, saying what `key` must be, where `read`
    /// refuses it.
    ///
    /// Inlined: most keys asked for are absent, and a field asks for a
    /// dozen; the error is reported out of line.
    #[inline]
    fn typed<'v, 'j, T>(
        &mut self,
        value: Option<&'v Value<'j>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        read: impl FnOnce(&'v Value<'j>) -> Result<T, String>,
    ) -> Option<T> {
        match read(value.filter(|v| !v.is_null())?) {
            Ok(taken) => Some(taken),
            Err(must_be) => {
                self.must_be(pointer, key, must_be);
                None
            }
        }
    }

    /// The error [`Walker::typed`] reports where a value is of the wrong kind.
    #[cold]
    fn must_be(&mut self, pointer: &(impl fmt::Display + ?Sized), key: &str, must_be: String) {
        self.err(
            &format!("{pointer}/{}", esc(key)),
            format!("`{key}` must be {must_be}"),
        );
    }

    fn req_str<'v>(
        &mut self,
        map: &'v Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        hint: &str,
    ) -> Option<&'v str> {
        self.req_str_of(map.get(key), key, pointer, hint)
    }

    /// [`Walker::req_str`] of the value found for `key`.
    fn req_str_of<'v>(
        &mut self,
        value: Option<&'v Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        hint: &str,
    ) -> Option<&'v str> {
        if value.is_none() {
            self.err(pointer, format!("`{key}` is missing; {hint}"));
            return None;
        }
        let value = self.str_of(value, key, pointer)?;
        // A value that starts with a visible ASCII character is not blank:
        // only others are trimmed to tell.
        let blank = match value.as_bytes().first() {
            Some(b) if b.is_ascii_graphic() => false,
            _ => value.trim().is_empty(),
        };
        if blank {
            self.err(
                &format!("{pointer}/{}", esc(key)),
                format!("`{key}` is empty; {hint}"),
            );
            return None;
        }
        Some(value)
    }

    fn opt_bool(
        &mut self,
        map: &Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<bool> {
        self.bool_of(map.get(key), key, pointer)
    }

    /// [`Walker::opt_bool`] of the value found for `key`.
    #[inline]
    fn bool_of(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<bool> {
        self.typed(value, key, pointer, |value| match value {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("`true` or `false`, not {}", type_name(other))),
        })
    }

    /// The value found for `key`, if it is a number; an error if it is
    /// anything else but null.
    #[inline]
    fn number_of(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<f64> {
        self.typed(value, key, pointer, |value| match value {
            Value::Number(n) => Ok(n.as_f64()),
            other => Err(format!("a number, not {}", type_name(other))),
        })
        .flatten()
    }

    /// The value found for `key`, if it is a whole number of at least 1; an
    /// error if it is anything else but null.
    #[inline]
    fn count_of(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<u64> {
        self.typed(value, key, pointer, |value| match value {
            Value::Number(n) if n.as_u64().is_some_and(|v| v >= 1) => Ok(n.as_u64()),
            other => Err(format!("a whole number of at least 1, not {other}")),
        })
        .flatten()
    }

    fn str_list(
        &mut self,
        map: &Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Vec<String> {
        self.str_list_of(map.get(key), key, pointer)
    }

    /// [`Walker::str_list`] of the value found for `key`.
    fn str_list_of(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Vec<String> {
        let here = || format!("{pointer}/{}", esc(key));
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.to_string()),
                        other => self.err(
                            &format!("{}/{i}", here()),
                            format!("`{key}` holds strings, not {}", type_name(other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.err(
                    &here(),
                    format!(
                        "`{key}` must be an array of strings, not {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }

    fn array<'v, 'j>(&mut self, doc: &'v Map<'j>, key: &str) -> &'v [Value<'j>] {
        match doc.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(Value::Object(_)) => {
                self.err(&format!("/{key}"), format!("`{key}` must be an array; upstream's map form is normalized to an array by `os compile`, so list the entries with a `name` each"));
                &[]
            }
            Some(other) => {
                self.err(
                    &format!("/{key}"),
                    format!("`{key}` must be an array, not {}", type_name(other)),
                );
                &[]
            }
        }
    }
}

/// A chunk of objects walked by a fork of the walker: the fork and the objects
/// it took, or `None` where an element did not parse.
type Walked<'a> = Option<(Walker<'a>, Vec<ObjectDef>)>;

/// Definitions with fewer objects than this are walked on one thread.
const PARALLEL_FROM: usize = 64;

/// Validate a merged definition. `strict` turns unknown keys into errors.
pub fn validate(document: &Value<'_>, sources: &SourceMap, strict: bool) -> Report {
    validate_in_parts(document, Objects::InDocument, sources, strict, parts())
        // Trees in the document are parsed already; only text can fail to.
        .unwrap_or_default()
}

/// Validate a large document read in outline (see [`json::Outline`]): its
/// objects are parsed as they are walked, in parts, each tree freed once
/// walked. The report is the one [`validate`] gives on the whole tree, or
/// `None` where an element does not parse and the whole document must be
/// parsed to say why.
pub fn validate_outline(
    outline: &json::Outline<'_>,
    sources: &SourceMap,
    strict: bool,
) -> Option<Report> {
    validate_in_parts(
        outline.document(),
        Objects::Text(outline.objects()),
        sources,
        strict,
        parts(),
    )
}

/// How many threads a large definition is parsed and walked on: the cores, at
/// most 4. Asked once per process (the answer reads cgroup files).
pub(crate) fn parts() -> usize {
    static PARTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PARTS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

/// Where the objects of a definition are read from.
#[derive(Clone, Copy)]
pub(crate) enum Objects<'v, 'j> {
    /// The document's own `objects`, already trees.
    InDocument,
    /// Elements an outline kept as text (the document's `objects` is empty).
    Text(&'v [json::Element<'j>]),
}

/// The objects being walked, whichever way they were read.
#[derive(Clone, Copy)]
enum Elements<'v, 'j> {
    Trees(&'v [Value<'j>]),
    Text(&'v [json::Element<'j>]),
}

impl<'v, 'j> Elements<'v, 'j> {
    fn len(self) -> usize {
        match self {
            Elements::Trees(values) => values.len(),
            Elements::Text(elements) => elements.len(),
        }
    }

    fn name(self, i: usize) -> Option<Cow<'v, str>> {
        match self {
            Elements::Trees(values) => values[i]
                .get("name")
                .and_then(Value::as_str)
                .map(Cow::Borrowed),
            Elements::Text(elements) => elements[i].name(),
        }
    }

    /// The `i`th object as a tree, or `None` where its text does not parse;
    /// text is read on `scratch`'s stacks.
    fn tree(self, i: usize, scratch: &mut json::Scratch<'j>) -> Option<Cow<'v, Value<'j>>> {
        match self {
            Elements::Trees(values) => Some(Cow::Borrowed(&values[i])),
            Elements::Text(elements) => elements[i].parse_on(scratch).map(Cow::Owned),
        }
    }
}

/// [`validate`] or [`validate_outline`], the objects walked in up to `parts`
/// parts at once (each on a thread of its own) once there are enough of them.
/// The report is the same whatever the number of parts.
pub(crate) fn validate_in_parts(
    document: &Value<'_>,
    source: Objects<'_, '_>,
    sources: &SourceMap,
    strict: bool,
    parts: usize,
) -> Option<Report> {
    let mut w = Walker::new(sources, strict);
    let mut report = Report::default();
    let Some(doc) = w.object(document, "", "an ObjectStack definition") else {
        report.errors = w.errors;
        return Some(report);
    };
    w.unknown_keys(doc, "", keys::top_level(), "an ObjectStack definition");
    for key in doc.keys() {
        if keys::CARRIED_COLLECTIONS.contains(&key) {
            let count = match &doc[key] {
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                _ => 1,
            };
            report.carried.push((key.to_string(), count));
        }
    }
    if doc.contains_key("packages") {
        w.err("/packages", "multi-package artifacts (`packages`) are not supported; build one artifact per package");
    }

    let manifest = validate_manifest(&mut w, doc);
    let capabilities = collect_names(&mut w, doc, "capabilities");
    let positions = collect_names(&mut w, doc, "positions");
    let policy = read_policy(&mut w, doc);

    // Objects first: everything else refers to them.
    let mut objects = Vec::new();
    let in_document = w.array(doc, "objects");
    let elements = match source {
        Objects::InDocument => Elements::Trees(in_document),
        Objects::Text(text) => Elements::Text(text),
    };
    let count = elements.len();
    let names: Vec<Option<Cow<'_, str>>> = (0..count).map(|i| elements.name(i)).collect();
    let declared: Arc<BTreeSet<String>> =
        Arc::new(names.iter().flatten().map(|n| n.to_string()).collect());
    w.declared = Arc::clone(&declared);
    w.perms_known = Arc::new(
        SYSTEM_PERMISSIONS
            .iter()
            .chain(UPSTREAM_CAPABILITIES)
            .map(|s| s.to_string())
            .chain(capabilities.iter().cloned())
            .collect(),
    );
    // Which objects repeat an earlier one's name, decided in order up front so
    // that the parts can be walked at once.
    let mut seen = HashSet::new();
    let duplicate: Vec<bool> = names
        .iter()
        .map(|name| name.as_deref().is_some_and(|n| !seen.insert(n)))
        .collect();
    let walk = |w: &mut Walker<'_>, range: std::ops::Range<usize>| {
        // Grown by doubling, not sized to the chunk: every chunk's own size
        // would be a size of its own to the allocator, each in a fresh page
        // of its own (and a fresh huge page zeroed for the first touch).
        let mut objects = Vec::new();
        let mut scratch = json::Scratch::default();
        for i in range {
            let value = elements.tree(i, &mut scratch)?;
            let pointer = format!("/objects/{i}");
            if duplicate[i] {
                w.err(
                    &format!("{pointer}/name"),
                    format!(
                        "the object name `{}` is used twice; object names must be unique",
                        names[i].as_deref().unwrap_or_default()
                    ),
                );
            }
            if let Some(object) =
                validate_object(w, &value, &pointer, &manifest, &declared, &policy)
                && !duplicate[i]
            {
                objects.push(object);
            }
        }
        Some(objects)
    };
    if parts <= 1 || count < PARALLEL_FROM {
        objects = walk(&mut w, 0..count)?;
    } else {
        // The objects are walked in chunks, each thread taking the next one
        // free, so that a thread the scheduler slows down (the digests are
        // computed at the same time) leaves less of the walk to wait for than
        // a fixed half would. Each chunk is a share of what is left before it,
        // so they shrink as the walk goes on: the last ones taken are small,
        // and the threads finish close together. Each chunk has its own fork
        // of the walker, joined in order: the report is the one a single walk
        // gives.
        let bounds = chunk_bounds(count, parts);
        let chunks = bounds.len() - 1;
        let next = AtomicUsize::new(0);
        let take = || {
            let mut done = Vec::new();
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    return done;
                }
                let mut fork = w.fork();
                let range = bounds[chunk]..bounds[chunk + 1];
                let walked = walk(&mut fork, range).map(|objects| (fork, objects));
                if walked.is_none() {
                    // An element that does not parse ends the walk: the
                    // document is parsed whole instead.
                    next.store(chunks, Ordering::Relaxed);
                }
                done.push((chunk, walked));
            }
        };
        let mut walked: Vec<(usize, Walked<'_>)> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..parts).map(|_| scope.spawn(take)).collect();
            let mut walked = take();
            for helper in helpers {
                match helper.join() {
                    Ok(part) => walked.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            walked
        });
        walked.sort_by_key(|(chunk, _)| *chunk);
        if walked.len() != chunks {
            return None;
        }
        // One allocation for all of them, not one per doubling.
        objects.reserve_exact(
            walked
                .iter()
                .map(|(_, part)| part.as_ref().map_or(0, |(_, objects)| objects.len()))
                .sum(),
        );
        for (_, part) in walked {
            let (fork, part) = part?;
            w.join(fork);
            objects.extend(part);
        }
    }
    // Policy entries must name real objects and fields.
    for (name, entry) in &policy.objects {
        let pointer = format!("/x-objectos/objects/{}", esc(name));
        match objects.iter().find(|o| o.name == *name) {
            None => w.err(&pointer, format!("`x-objectos` names the object `{name}`, which is not defined; define it under `objects` or remove this entry")),
            Some(object) => {
                for (j, field) in entry.sensitive_fields.iter().enumerate() {
                    if object.field(field).is_none() {
                        w.err(&format!("{pointer}/sensitiveFields/{j}"), format!("`{name}` has no field `{field}`; list only fields the object defines"));
                    }
                }
            }
        }
    }
    let has_manifest = manifest.is_some();
    let mut model = Model::new(
        manifest.unwrap_or_else(placeholder_manifest),
        objects,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        capabilities,
        positions,
        policy.expires_after,
    );
    model.permission_sets = validate_permission_sets(&mut w, doc, &model);
    model.sharing_rules = validate_sharing_rules(&mut w, doc, &model);
    model.actions = validate_actions(&mut w, doc, &model);
    model.undeclared_capabilities = std::mem::take(&mut w.undeclared);
    model.ignored_grants = std::mem::take(&mut w.ignored);

    report.errors = w.errors;
    report.warnings = w.warnings;
    if report.errors.is_empty() && has_manifest {
        report.model = Some(model);
    }
    Some(report)
}

/// Where the chunks of a walk of `count` objects on `parts` threads begin,
/// and where the last ends (`count`): each chunk a share of the objects left
/// before it (an eighth per thread), at least [`MIN_CHUNK`] objects.
fn chunk_bounds(count: usize, parts: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut at = 0;
    while at < count {
        at += (count - at)
            .div_ceil(parts * 8)
            .max(MIN_CHUNK)
            .min(count - at);
        bounds.push(at);
    }
    bounds
}

/// The fewest objects a chunk of a walk in parts holds.
const MIN_CHUNK: usize = 4;

fn placeholder_manifest() -> Manifest {
    Manifest {
        id: String::new(),
        namespace: None,
        version: semver::Version::new(0, 0, 0),
        name: None,
        description: None,
        protocol: None,
    }
}

fn validate_manifest(w: &mut Walker<'_>, doc: &Map<'_>) -> Option<Manifest> {
    let Some(value) = doc.get("manifest") else {
        w.err("", "`manifest` is missing; every artifact needs `manifest.id`, `manifest.version` and `manifest.name`");
        return None;
    };
    let map = w.object(value, "/manifest", "`manifest`")?;
    w.unknown_keys(map, "/manifest", keys::manifest(), "`manifest`");
    let mut id = w.req_str(
        map,
        "id",
        "/manifest",
        "give the package an id, preferably reverse-DNS such as `com.example.crm`",
    );
    // Upstream takes any string (`npm create objectstack my-app` writes `my-app`);
    // reverse-DNS is its convention, so anything else is a warning. Control
    // characters are refused: a signature's trusted comment cannot carry them,
    // so the artifact could never be verified against its own id.
    if let Some(text) = id {
        if text.chars().any(char::is_control) {
            w.err(
                "/manifest/id",
                "the id holds a control character (a tab or line break, say), which no signature can name; remove it",
            );
            id = None;
        } else if !is_reverse_dns(text) {
            w.warn("/manifest/id", format!("`{text}` is not a reverse-DNS id; objectos accepts it as upstream does, but an id like `com.example.{}` keeps packages of different publishers apart", text.to_ascii_lowercase().replace(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'), "_")));
        }
    }
    let version = w.req_str(
        map,
        "version",
        "/manifest",
        "give it a semantic version such as `1.0.0`",
    );
    let version = version.and_then(|v| match semver::Version::parse(v) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            w.err(
                "/manifest/version",
                format!(
                    "`{v}` is not a semantic version; write MAJOR.MINOR.PATCH, such as `1.2.0`"
                ),
            );
            None
        }
    });
    let name = w.opt_str(map, "name", "/manifest").map(str::to_string);
    if name.is_none() {
        w.warn(
            "/manifest",
            "`name` is missing; upstream requires a display name for the package",
        );
    }
    let namespace = w.opt_str(map, "namespace", "/manifest").map(str::to_string);
    if let Some(ns) = &namespace {
        let ok = ns.len() >= 2
            && ns.len() <= 20
            && is_snake(ns)
            && ns.starts_with(|c: char| c.is_ascii_lowercase());
        if !ok {
            w.err("/manifest/namespace", format!("`{ns}` is not a namespace; use 2 to 20 lower-case letters, digits and `_`, starting with a letter"));
        }
    }
    if let Some(kind) = w.opt_str(map, "type", "/manifest")
        && !keys::MANIFEST_TYPES.contains(&kind)
    {
        w.err(
            "/manifest/type",
            format!(
                "`{kind}` is not a package type; use one of {}",
                keys::MANIFEST_TYPES.join(", ")
            ),
        );
    }
    let description = w
        .opt_str(map, "description", "/manifest")
        .map(str::to_string);
    let mut protocol = None;
    match map.get("engines") {
        None => w.warn("/manifest", format!("`engines.protocol` is missing; add `\"engines\": {{\"protocol\": \"^{PROTOCOL_MAJOR}\"}}` so tools know which protocol the artifact speaks")),
        Some(engines) => {
            if let Some(engines) = w.object(engines, "/manifest/engines", "`engines`")
                && let Some(range) = w.opt_str(engines, "protocol", "/manifest/engines") {
                    protocol = Some(range.to_string());
                    match semver::VersionReq::parse(range) {
                        Ok(req) => {
                            let compatible = (0..=99).any(|minor| req.matches(&semver::Version::new(PROTOCOL_MAJOR, minor, 0)));
                            if !compatible {
                                w.err("/manifest/engines/protocol", format!("`{range}` does not admit protocol {PROTOCOL_MAJOR}, the one objectos speaks; build the app for `^{PROTOCOL_MAJOR}`"));
                            }
                        }
                        Err(_) => w.err("/manifest/engines/protocol", format!("`{range}` is not a version range; write it like `^{PROTOCOL_MAJOR}`")),
                    }
                }
        }
    }
    Some(Manifest {
        id: id?.to_string(),
        namespace,
        version: version?,
        name,
        description,
        protocol,
    })
}

fn collect_names(w: &mut Walker<'_>, doc: &Map<'_>, key: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, item) in w.array(doc, key).iter().enumerate() {
        let pointer = format!("/{key}/{i}");
        if let Some(map) = w.object(item, &pointer, "an entry")
            && let Some(name) = w.req_str(map, "name", &pointer, "give it a name")
        {
            if names.iter().any(|n| n == name) {
                w.err(
                    &format!("{pointer}/name"),
                    format!("`{name}` is defined twice"),
                );
            }
            names.push(name.to_string());
        }
    }
    names
}

#[derive(Default)]
struct PolicyEntry {
    agent_writes: Option<AgentWrites>,
    read_only: bool,
    audit_reads: bool,
    sensitive_fields: Vec<String>,
}

struct Policy {
    objects: BTreeMap<String, PolicyEntry>,
    expires_after: Duration,
}

fn read_policy(w: &mut Walker<'_>, doc: &Map<'_>) -> Policy {
    let mut policy = Policy {
        objects: BTreeMap::new(),
        expires_after: Duration::from_secs(7 * 86_400),
    };
    let Some(value) = doc.get("x-objectos") else {
        return policy;
    };
    let Some(map) = w.object(value, "/x-objectos", "`x-objectos`") else {
        return policy;
    };
    // objectos's own block: a misspelt key would silently weaken policy, so unknown
    // keys are always errors here.
    for key in map.keys() {
        if !keys::POLICY_KEYS.contains(&key) {
            w.err(
                &format!("/x-objectos/{}", esc(key)),
                format!("`{key}` is not a key of `x-objectos`; it takes `objects`, `approvals` and `basedOn`"),
            );
        }
    }
    // An artifact written from an approved metadata change names the artifact it
    // changed: `apply` refuses it once that is no longer the one applied.
    if let Some(based) = map.get("basedOn") {
        let ok = based
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            w.err(
                "/x-objectos/basedOn",
                "`basedOn` is the sha256 (64 hex digits) of the artifact this one changes",
            );
        }
    }
    if let Some(objects) = map.get("objects")
        && let Some(objects) = w.object(objects, "/x-objectos/objects", "`x-objectos.objects`")
    {
        for (name, entry) in objects {
            let pointer = format!("/x-objectos/objects/{}", esc(name));
            let Some(entry) = w.object(entry, &pointer, "an object's policy") else {
                continue;
            };
            for key in entry.keys() {
                if !keys::OBJECT_POLICY_KEYS.contains(&key) {
                    w.err(&format!("{pointer}/{}", esc(key)), format!("`{key}` is not an object policy; use `agentWrites`, `readOnly`, `auditReads` or `sensitiveFields`"));
                }
            }
            let agent_writes = match w.opt_str(entry, "agentWrites", &pointer) {
                None => None,
                Some("direct") => Some(AgentWrites::Direct),
                Some("approval") => Some(AgentWrites::Approval),
                Some("deny") => Some(AgentWrites::Deny),
                Some(other) => {
                    w.err(&format!("{pointer}/agentWrites"), format!("`{other}` is not an agent write policy; use `direct`, `approval` or `deny`"));
                    None
                }
            };
            let read_only = w.opt_bool(entry, "readOnly", &pointer).unwrap_or(false);
            let audit_reads = w.opt_bool(entry, "auditReads", &pointer).unwrap_or(false);
            let sensitive_fields = w.str_list(entry, "sensitiveFields", &pointer);
            policy.objects.insert(
                name.to_string(),
                PolicyEntry {
                    agent_writes,
                    read_only,
                    audit_reads,
                    sensitive_fields,
                },
            );
        }
    }
    if let Some(approvals) = map.get("approvals")
        && let Some(approvals) = w.object(approvals, "/x-objectos/approvals", "`approvals`")
    {
        for key in approvals.keys() {
            if !keys::APPROVALS_KEYS.contains(&key) {
                w.err(
                    &format!("/x-objectos/approvals/{}", esc(key)),
                    format!("`{key}` is not an approvals setting; it takes `expiresAfter`"),
                );
            }
        }
        if let Some(text) = w.opt_str(approvals, "expiresAfter", "/x-objectos/approvals") {
            match crate::timefmt::parse_duration(text) {
                Ok(d) => policy.expires_after = d,
                Err(e) => w.err("/x-objectos/approvals/expiresAfter", e),
            }
        }
    }
    policy
}

fn validate_object(
    w: &mut Walker<'_>,
    value: &Value<'_>,
    pointer: &str,
    manifest: &Option<Manifest>,
    declared: &BTreeSet<String>,
    policy: &Policy,
) -> Option<ObjectDef> {
    let map = w.object(value, pointer, "an object")?;
    w.unknown_keys(map, pointer, keys::object(), "an object");
    let name = w
        .req_str(
            map,
            "name",
            pointer,
            "give the object a snake_case name such as `crm_account`",
        )?
        .to_string();
    let mut ok = true;
    if !is_snake(&name) {
        w.err(&format!("{pointer}/name"), format!("`{name}` is not snake_case; use lower-case letters, digits and `_`, such as `crm_account`"));
        ok = false;
    }
    if let Some(Manifest {
        namespace: Some(ns),
        ..
    }) = manifest
        && !name.starts_with(&format!("{ns}_"))
        && !name.starts_with("sys_")
    {
        w.err(&format!("{pointer}/name"), format!("`{name}` does not start with the namespace prefix `{ns}_`; upstream requires every object of namespace `{ns}` to be named `{ns}_…`"));
        ok = false;
    }
    if name.starts_with("sys_") || name.starts_with("objectos_") {
        w.err(
            &format!("{pointer}/name"),
            format!("`{name}` is reserved for the platform; choose another name"),
        );
        ok = false;
    }
    let label = w
        .opt_str(map, "label", pointer)
        .unwrap_or(&name)
        .to_string();
    let ownership = match w.opt_str(map, "ownership", pointer) {
        None | Some("user") => Ownership::User,
        Some("org") => Ownership::Org,
        Some("none") => Ownership::None,
        Some("business_unit") => {
            w.unenforced(&format!("{pointer}/ownership"), "ownership `business_unit`");
            ok = false;
            Ownership::User
        }
        Some(other) => {
            w.err(
                &format!("{pointer}/ownership"),
                format!("`{other}` is not an ownership; use `user`, `org` or `none`"),
            );
            ok = false;
            Ownership::User
        }
    };
    let sharing_model = match w.opt_str(map, "sharingModel", pointer) {
        None => SharingModel::Private,
        Some(text) => SharingModel::parse(text).unwrap_or_else(|| {
            w.err(&format!("{pointer}/sharingModel"), format!("`{text}` is not a sharing model; use `private`, `public_read`, `public_read_write` or `controlled_by_parent`"));
            ok = false;
            SharingModel::Private
        }),
    };
    // Constructs that shape access and that objectos does not enforce.
    if map.get("systemFields") == Some(&Value::Bool(false))
        || map.get("systemFields").and_then(|s| s.get("tenant")) == Some(&Value::Bool(false))
    {
        w.unenforced(
            &format!("{pointer}/systemFields"),
            "opting out of the organization column (`systemFields`)",
        );
        ok = false;
    }
    if let Some(tenancy) = map.get("tenancy") {
        let plain = tenancy
            .as_object()
            .is_some_and(|t| t.get("enabled") == Some(&Value::Bool(true)) && t.len() == 1);
        if !plain {
            w.unenforced(&format!("{pointer}/tenancy"), "custom `tenancy`");
            ok = false;
        }
    }
    if map.get("publicSharing").and_then(|p| p.get("enabled")) == Some(&Value::Bool(true)) {
        w.unenforced(
            &format!("{pointer}/publicSharing"),
            "public share links (`publicSharing`)",
        );
        ok = false;
    }
    if let Some(enable) = map.get("enable").and_then(Value::as_object)
        && (enable.get("apiEnabled") == Some(&Value::Bool(false))
            || enable.contains_key("apiMethods"))
    {
        w.unenforced(
            &format!("{pointer}/enable"),
            "restricting the API surface (`enable.apiEnabled`/`apiMethods`)",
        );
        ok = false;
    }
    let gate = read_gate(w, map, pointer);

    let entry = policy.objects.get(&name);
    let sensitive: BTreeSet<&str> = entry
        .map(|e| e.sensitive_fields.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::with_capacity(
        map.get("fields")
            .and_then(Value::as_object)
            .map_or(0, Map::len),
    );
    let mut merged = Vec::new();
    match map.get("fields") {
        None => {
            w.err(
                pointer,
                format!(
                    "`fields` is missing; `{name}` needs a map of field name to field definition"
                ),
            );
            ok = false;
        }
        Some(Value::Object(field_map)) => {
            for (field_name, field_value) in field_map {
                let here = Below {
                    parent: &pointer,
                    collection: "fields",
                    step: Step::Key(field_name),
                };
                match validate_field(
                    w,
                    field_name,
                    field_value,
                    &here,
                    &name,
                    declared,
                    sensitive.contains(field_name),
                ) {
                    Some(field) if SYSTEM_FIELDS.contains(&field.name.as_str()) => {
                        match merge_system_field(w, field, &here, ownership) {
                            Some(m) => merged.push(m),
                            None => ok = false,
                        }
                    }
                    Some(field) => fields.push(field),
                    None => ok = false,
                }
            }
        }
        Some(Value::Array(_)) => {
            w.err(
                &format!("{pointer}/fields"),
                "`fields` must be a map of field name to definition, not an array",
            );
            ok = false;
        }
        Some(other) => {
            w.err(
                &format!("{pointer}/fields"),
                format!("`fields` must be a map, not {}", type_name(other)),
            );
            ok = false;
        }
    }
    if sharing_model == SharingModel::ControlledByParent {
        let masters: Vec<&FieldDef> = fields
            .iter()
            .filter(|f| f.field_type == "master_detail")
            .collect();
        if masters.len() != 1 {
            w.err(&format!("{pointer}/sharingModel"), format!(
                "`controlled_by_parent` needs exactly one `master_detail` field naming the parent; `{name}` has {}",
                masters.len()
            ));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let mut object = ObjectDef::new(
        name,
        label,
        ownership,
        sharing_model,
        fields,
        gate,
        entry
            .and_then(|e| e.agent_writes)
            .unwrap_or(AgentWrites::Direct),
        entry.is_some_and(|e| e.read_only),
        entry.is_some_and(|e| e.audit_reads),
    );
    object.merged_system_fields = merged;
    Some(object)
}

/// A field the app declares under a system field's name. With the type upstream
/// gives that field it is merged with the system field: no second column, and
/// objectos's rules for the system field apply. Another type is an error, and so
/// is anything on the declaration that would narrow who reads or writes the
/// field, since objectos would not enforce it. Settings objectos ignores for a
/// system field are warnings.
fn merge_system_field(
    w: &mut Walker<'_>,
    field: FieldDef,
    pointer: &Below<'_>,
    ownership: Ownership,
) -> Option<MergedSystemField> {
    let name = field.name.as_str();
    let shapes = system_field_shapes(name);
    let fits = !field.multiple
        && shapes
            .iter()
            .any(|(t, r)| field.field_type == *t && r.is_none_or(|r| field.reference() == Some(r)));
    if !fits {
        let expected = shapes
            .iter()
            .map(|(t, r)| match r {
                None => format!("`{t}`"),
                Some(r) => format!("`{t}` with `reference: \"{r}\"`"),
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let actual = match (field.reference(), field.multiple) {
            (_, true) => format!("a multi-value `{}`", field.field_type),
            (Some(r), false) if is_reference(field.field_type) => {
                format!("`{}` to `{r}`", field.field_type)
            }
            _ => format!("`{}`", field.field_type),
        };
        w.err(
            &format!("{pointer}/type"),
            format!("`{name}` is a system field every object has; a declaration of it is merged with it only as a single {expected}, not {actual}; use that type or rename the field"),
        );
        return None;
    }
    let mut ok = true;
    if !field.required_permissions.is_empty() {
        w.unenforced(
            &format!("{pointer}/requiredPermissions"),
            &format!("`requiredPermissions` on the system field `{name}` (whoever reads a record reads its system fields)"),
        );
        ok = false;
    }
    if field.internal {
        w.unenforced(
            &format!("{pointer}/internal"),
            &format!("hiding the system field `{name}` (`internal`)"),
        );
        ok = false;
    }
    if name == "owner_id" && field.readonly {
        w.unenforced(
            &format!("{pointer}/readonly"),
            "a read-only `owner_id` (holders of `modifyAllRecords` may reassign a record)",
        );
        ok = false;
    }
    if field.sensitive {
        w.unenforced(
            pointer,
            &format!("a sensitive system field `{name}` (`x-objectos` `sensitiveFields`)"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    if field.unique != Unique::No && name != "id" {
        w.warn(
            &format!("{pointer}/unique"),
            format!(
                "`unique` on the system field `{name}` is ignored; objectos fills `{name}` itself"
            ),
        );
    }
    let own_default = match name {
        "created_at" | "updated_at" => DefaultValue::Now,
        "owner_id" | "created_by" | "updated_by" => DefaultValue::CurrentUser,
        _ => DefaultValue::Literal(Box::new(serde_json::Value::Null)),
    };
    if let Some(default) = field.default_value()
        && *default != own_default
    {
        w.warn(
            &format!("{pointer}/defaultValue"),
            format!("the default of the system field `{name}` is ignored; objectos fills `{name}` itself"),
        );
    }
    if name == "owner_id" && ownership != Ownership::User {
        w.warn(
            pointer,
            format!("`owner_id` on an object with ownership `{}` is merged with objectos's system column, which stays empty and which nobody sets; upstream would keep it as an ordinary user field, so rename it if the app stores a user there", ownership.as_str()),
        );
    }
    Some(MergedSystemField {
        name: field.name,
        label: field.label,
        field_type: field.field_type.to_string(),
    })
}

fn read_gate(w: &mut Walker<'_>, map: &Map<'_>, pointer: &str) -> ObjectGate {
    let here = format!("{pointer}/requiredPermissions");
    match map.get("requiredPermissions") {
        None | Some(Value::Null) => ObjectGate::default(),
        Some(Value::Array(_)) => {
            let all = w.str_list(map, "requiredPermissions", pointer);
            w.permissions(&all, &here);
            ObjectGate {
                read: all.clone(),
                create: all.clone(),
                update: all.clone(),
                delete: all,
            }
        }
        Some(Value::Object(ops)) => {
            for key in ops.keys() {
                if !["read", "create", "update", "delete"].contains(&key) {
                    w.err(&format!("{here}/{}", esc(key)), format!("`{key}` is not an operation; use `read`, `create`, `update` or `delete`"));
                }
            }
            let mut gate = ObjectGate::default();
            for (key, slot) in [
                ("read", &mut gate.read),
                ("create", &mut gate.create),
                ("update", &mut gate.update),
                ("delete", &mut gate.delete),
            ] {
                *slot = w.str_list(ops, key, &here);
                let list = slot.clone();
                w.permissions(&list, &format!("{here}/{key}"));
            }
            gate
        }
        Some(other) => {
            w.err(
                &here,
                format!(
                    "`requiredPermissions` must be an array or a map of operation to array, not {}",
                    type_name(other)
                ),
            );
            ObjectGate::default()
        }
    }
}

/// The entries of a field that validation reads, found in one pass over its
/// keys: a field is asked for about twenty keys and has a handful, and a large
/// artifact has tens of thousands of fields.
#[derive(Default)]
struct FieldEntries<'v, 'j> {
    name: Option<&'v Value<'j>>,
    field_type: Option<&'v Value<'j>>,
    label: Option<&'v Value<'j>>,
    required: Option<&'v Value<'j>>,
    multiple: Option<&'v Value<'j>>,
    unique: Option<&'v Value<'j>>,
    readonly: Option<&'v Value<'j>>,
    internal: Option<&'v Value<'j>>,
    max_length: Option<&'v Value<'j>>,
    min_length: Option<&'v Value<'j>>,
    min: Option<&'v Value<'j>>,
    max: Option<&'v Value<'j>>,
    required_permissions: Option<&'v Value<'j>>,
    masking_rule: Option<&'v Value<'j>>,
    readonly_when: Option<&'v Value<'j>>,
    reference: Option<&'v Value<'j>>,
    options: Option<&'v Value<'j>>,
    default_value: Option<&'v Value<'j>>,
}

impl<'v, 'j> FieldEntries<'v, 'j> {
    /// The field's entries by key, each other key reported (in the order of
    /// the map) where it is not a key of a field, as `unknown_keys` does. The
    /// keys read here are all keys of a field (a test holds them to
    /// `keys::field()`), so none of them is ever reported.
    fn read(w: &mut Walker<'_>, map: &'v Map<'j>, pointer: &Below<'_>) -> Self {
        let mut found = FieldEntries::default();
        for (key, value) in map {
            // One candidate per length and first and third byte, then the
            // whole key compared: a chain of string comparisons cost more
            // than the rest of reading a field.
            let bytes = key.as_bytes();
            let (b0, b2) = (bytes.first().copied(), bytes.get(2).copied());
            let candidate = match (bytes.len(), b0, b2) {
                (3, Some(b'm'), Some(b'n')) => ("min", &mut found.min),
                (3, Some(b'm'), Some(b'x')) => ("max", &mut found.max),
                (4, Some(b'n'), _) => ("name", &mut found.name),
                (4, Some(b't'), _) => ("type", &mut found.field_type),
                (5, Some(b'l'), _) => ("label", &mut found.label),
                (6, Some(b'u'), _) => ("unique", &mut found.unique),
                (7, Some(b'o'), _) => ("options", &mut found.options),
                (8, Some(b'r'), Some(b'q')) => ("required", &mut found.required),
                (8, Some(b'r'), Some(b'a')) => ("readonly", &mut found.readonly),
                (8, Some(b'm'), _) => ("multiple", &mut found.multiple),
                (8, Some(b'i'), _) => ("internal", &mut found.internal),
                (9, Some(b'm'), Some(b'x')) => ("maxLength", &mut found.max_length),
                (9, Some(b'm'), Some(b'n')) => ("minLength", &mut found.min_length),
                (9, Some(b'r'), _) => ("reference", &mut found.reference),
                (11, Some(b'm'), _) => ("maskingRule", &mut found.masking_rule),
                (12, Some(b'r'), _) => ("readonlyWhen", &mut found.readonly_when),
                (12, Some(b'd'), _) => ("defaultValue", &mut found.default_value),
                (19, Some(b'r'), _) => ("requiredPermissions", &mut found.required_permissions),
                _ => {
                    w.unknown_key(key, pointer, keys::field(), "a field");
                    continue;
                }
            };
            match candidate {
                (expected, slot) if json::same_key(key, expected) => *slot = Some(value),
                _ => w.unknown_key(key, pointer, keys::field(), "a field"),
            }
        }
        found
    }
}

#[allow(clippy::too_many_arguments)]
fn validate_field(
    w: &mut Walker<'_>,
    name: &str,
    value: &Value<'_>,
    pointer: &Below<'_>,
    object: &str,
    declared: &BTreeSet<String>,
    listed_sensitive: bool,
) -> Option<FieldDef> {
    let map = w.object(value, pointer, "a field")?;
    let entries = FieldEntries::read(w, map, pointer);
    let mut ok = true;
    if !is_snake(name) {
        w.err(
            pointer,
            format!(
                "the field name `{name}` is not snake_case; use lower-case letters, digits and `_`"
            ),
        );
        ok = false;
    }
    if name == "owning_business_unit_id" {
        w.unenforced(
            pointer,
            "business-unit ownership (the `owning_business_unit_id` field)",
        );
        ok = false;
    }
    if let Some(inner) = w.str_of(entries.name, "name", pointer)
        && inner != name
    {
        w.err(
            &format!("{pointer}/name"),
            format!(
                "the field is keyed `{name}` but named `{inner}`; drop `name` or make them equal"
            ),
        );
        ok = false;
    }
    let given = w.req_str_of(
        entries.field_type,
        "type",
        pointer,
        "give the field a type such as `text`, `number` or `lookup`",
    )?;
    // The model keeps the list's own entry: no copy of the type per field.
    let Some(field_type) = FIELD_TYPES
        .iter()
        .copied()
        .find(|t| json::same_key(t, given))
    else {
        let hint = keys::suggest(given, FIELD_TYPES)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        w.err(
            &format!("{pointer}/type"),
            format!("`{given}` is not a field type of protocol {PROTOCOL_MAJOR}{hint}"),
        );
        return None;
    };
    let label = w
        .str_of(entries.label, "label", pointer)
        .unwrap_or(name)
        .to_string();
    let required = w
        .bool_of(entries.required, "required", pointer)
        .unwrap_or(false);
    let multiple = w
        .bool_of(entries.multiple, "multiple", pointer)
        .unwrap_or(false);
    let unique = match entries.unique {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Unique::No,
        Some(Value::Bool(true)) => Unique::Organization,
        Some(Value::String(s)) if s == "organization" => Unique::Organization,
        Some(Value::String(s)) if s == "global" => Unique::Global,
        Some(other) => {
            w.err(&format!("{pointer}/unique"), format!("`unique` takes `true`, `false`, `\"organization\"` or `\"global\"`, not {other}"));
            ok = false;
            Unique::No
        }
    };
    let readonly = w
        .bool_of(entries.readonly, "readonly", pointer)
        .unwrap_or(false)
        || is_computed(field_type);
    let internal = w
        .bool_of(entries.internal, "internal", pointer)
        .unwrap_or(false);
    let max_length = w.count_of(entries.max_length, "maxLength", pointer);
    let min_length = w.count_of(entries.min_length, "minLength", pointer);
    if let (Some(lo), Some(hi)) = (min_length, max_length)
        && lo > hi
    {
        w.err(
            &format!("{pointer}/minLength"),
            format!("`minLength` {lo} is more than `maxLength` {hi}"),
        );
        ok = false;
    }
    let min = w.number_of(entries.min, "min", pointer);
    let max = w.number_of(entries.max, "max", pointer);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        w.err(
            &format!("{pointer}/min"),
            format!("`min` {lo} is more than `max` {hi}"),
        );
        ok = false;
    }
    let required_permissions =
        w.str_list_of(entries.required_permissions, "requiredPermissions", pointer);
    if !required_permissions.is_empty() {
        w.permissions(
            &required_permissions,
            &format!("{pointer}/requiredPermissions"),
        );
    }

    // Access constructs objectos does not enforce.
    if entries.masking_rule.is_some() {
        w.unenforced(
            &format!("{pointer}/maskingRule"),
            "field masking (`maskingRule`)",
        );
        ok = false;
    }
    if entries.readonly_when.is_some() {
        w.unenforced(
            &format!("{pointer}/readonlyWhen"),
            "conditional read-only (`readonlyWhen`)",
        );
        ok = false;
    }

    let reference = w
        .str_of(entries.reference, "reference", pointer)
        .map(str::to_string);
    match field_type {
        "lookup" | "master_detail" => match &reference {
            None => {
                w.err(pointer, format!("a `{field_type}` field needs `reference`, the name of the object it points at"));
                ok = false;
            }
            Some(target) if target == "sys_user" && field_type == "lookup" => {}
            // Upstream's organization column, declared by the app: merged with
            // objectos's own (see `merge_system_field`).
            Some(target) if target == "sys_organization" && name == "organization_id" => {}
            Some(target) if !declared.contains(target) => {
                w.err(&format!("{pointer}/reference"), format!("`{target}` is not an object of this artifact; point `reference` at a defined object"));
                ok = false;
            }
            Some(target) if field_type == "master_detail" && target == object => {
                w.err(
                    &format!("{pointer}/reference"),
                    "a `master_detail` field cannot point at its own object",
                );
                ok = false;
            }
            Some(_) => {}
        },
        "tree" => {
            if let Some(target) = &reference
                && target != object
            {
                w.err(
                    &format!("{pointer}/reference"),
                    format!("a `tree` field points at its own object, `{object}`, not `{target}`"),
                );
                ok = false;
            }
        }
        "user" => {
            if let Some(target) = &reference
                && target != "sys_user"
            {
                w.err(
                    &format!("{pointer}/reference"),
                    "a `user` field points at users; drop `reference` or make it `sys_user`",
                );
                ok = false;
            }
        }
        _ => {
            if reference.is_some() {
                w.warn(
                    &format!("{pointer}/reference"),
                    format!("`reference` has no meaning on a `{field_type}` field and is ignored"),
                );
            }
        }
    }
    if multiple && field_type == "master_detail" {
        w.err(
            &format!("{pointer}/multiple"),
            "a `master_detail` field names one parent; drop `multiple`",
        );
        ok = false;
    }

    let mut options = Vec::new();
    if matches!(
        field_type,
        "select" | "multiselect" | "radio" | "checkboxes"
    ) {
        match entries.options {
            None | Some(Value::Null) => {
                w.err(pointer, format!("a `{field_type}` field needs `options`, a list of `{{\"label\", \"value\"}}`"));
                ok = false;
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let here = Below {
                        parent: pointer,
                        collection: "options",
                        step: Step::Index(i),
                    };
                    let value = match item {
                        Value::String(s) => Some(s.to_string()),
                        Value::Object(opt) => {
                            w.unknown_keys(opt, &here, keys::select_option(), "a select option");
                            match opt.get("value") {
                                Some(Value::String(s)) => Some(s.to_string()),
                                Some(Value::Number(n)) => Some(n.to_string()),
                                _ => {
                                    w.err(&here, "an option needs a string `value`");
                                    None
                                }
                            }
                        }
                        other => {
                            w.err(
                                &here,
                                format!(
                                    "an option is a string or `{{\"label\", \"value\"}}`, not {}",
                                    type_name(other)
                                ),
                            );
                            None
                        }
                    };
                    if let Some(value) = value {
                        if options.contains(&value) {
                            w.err(&here, format!("the option value `{value}` is listed twice"));
                            ok = false;
                        }
                        options.push(value);
                    } else {
                        ok = false;
                    }
                }
            }
            Some(other) => {
                w.err(
                    &format!("{pointer}/options"),
                    format!("`options` must be an array, not {}", type_name(other)),
                );
                ok = false;
            }
        }
    }
    let multiple_values = multiple || matches!(field_type, "multiselect" | "checkboxes" | "tags");
    let storage = storage_of(field_type, multiple);
    let mut literal_default = None;
    let default_value = match entries.default_value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "NOW()" => {
            if !matches!(storage, Storage::Date | Storage::DateTime | Storage::Time) {
                w.err(
                    &format!("{pointer}/defaultValue"),
                    "`NOW()` is a default only for date, datetime and time fields",
                );
                ok = false;
            }
            Some(DefaultValue::Now)
        }
        Some(Value::String(s)) if s == "current_user" => {
            let fits = field_type == "user"
                || (field_type == "lookup" && reference.as_deref() == Some("sys_user"));
            if !fits || multiple {
                w.err(
                    &format!("{pointer}/defaultValue"),
                    "`current_user` is a default only for single-value user fields",
                );
                ok = false;
            }
            Some(DefaultValue::CurrentUser)
        }
        Some(Value::Object(env)) if env.contains_key("dialect") => {
            w.warn(&format!("{pointer}/defaultValue"), "an expression default is carried but not evaluated by objectos; records get no default for this field");
            None
        }
        Some(literal) => {
            // Checked against the field once it is built, below.
            literal_default = Some(literal.to_serde());
            None
        }
    };
    let mut field = FieldDef {
        name: name.to_string(),
        label,
        sensitive: listed_sensitive || matches!(field_type, "secret" | "password"),
        field_type,
        storage,
        required,
        unique,
        // Most fields have none of these: no empty one is built to compare with.
        extras: (default_value.is_some() || reference.is_some() || !options.is_empty()).then(
            || {
                Box::new(FieldExtras {
                    default_value,
                    reference,
                    options,
                })
            },
        ),
        multiple: multiple_values,
        readonly,
        internal,
        bounds: boxed_if_set(Bounds {
            max_length,
            min_length,
            min,
            max,
        }),
        required_permissions,
    };
    if let Some(literal) = literal_default {
        if let Err(why) = crate::model::values::check_value(&field, &literal) {
            w.err(
                &format!("{pointer}/defaultValue"),
                format!("the default does not fit the field: {why}"),
            );
            ok = false;
        }
        field.set_default_value(DefaultValue::Literal(Box::new(literal)));
    }
    if !ok {
        return None;
    }
    Some(field)
}

/// Upstream's platform objects (`sys_user`, `sys_organization`, …). objectos has
/// none of them and reserves the prefix, so no app object is one.
fn is_platform_object(name: &str) -> bool {
    name.starts_with("sys_")
}

fn validate_permission_sets(
    w: &mut Walker<'_>,
    doc: &Map<'_>,
    model: &Model,
) -> Vec<PermissionSetDef> {
    let mut out: Vec<PermissionSetDef> = Vec::new();
    for (i, value) in w.array(doc, "permissions").iter().enumerate() {
        let pointer = format!("/permissions/{i}");
        let Some(map) = w.object(value, &pointer, "a permission set") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::permission_set(), "a permission set");
        let Some(name) = w.req_str(
            map,
            "name",
            &pointer,
            "give the permission set a snake_case name such as `sales_rep`",
        ) else {
            continue;
        };
        let name = name.to_string();
        if !is_snake(&name) {
            w.err(
                &format!("{pointer}/name"),
                format!("`{name}` is not snake_case"),
            );
        }
        if name == "admin" {
            w.err(
                &format!("{pointer}/name"),
                "`admin` is objectos's built-in administrator set; choose another name",
            );
        }
        if out.iter().any(|p| p.name == name) {
            w.err(
                &format!("{pointer}/name"),
                format!("the permission set `{name}` is defined twice"),
            );
        }
        if map
            .get("rowLevelSecurity")
            .is_some_and(|r| r.as_array().is_none_or(|a| !a.is_empty()))
        {
            w.unenforced(
                &format!("{pointer}/rowLevelSecurity"),
                "row-level security (`rowLevelSecurity`)",
            );
        }
        if map.get("adminScope").is_some_and(|v| !v.is_null()) {
            w.unenforced(
                &format!("{pointer}/adminScope"),
                "delegated administration (`adminScope`)",
            );
        }
        let mut set = PermissionSetDef {
            label: w
                .opt_str(map, "label", &pointer)
                .unwrap_or(&name)
                .to_string(),
            description: w.opt_str(map, "description", &pointer).map(str::to_string),
            is_default: w.opt_bool(map, "isDefault", &pointer).unwrap_or(false),
            name,
            objects: BTreeMap::new(),
            fields: BTreeMap::new(),
            system_permissions: BTreeSet::new(),
        };
        match map.get("objects") {
            None => w.err(
                &pointer,
                "`objects` is missing; give a map of object name to rights (it may be `{}`)",
            ),
            Some(objects) => {
                if let Some(objects) = w.object(objects, &format!("{pointer}/objects"), "`objects`")
                {
                    // Collected at once from the grants read (the map sorts
                    // them once and builds its tree in bulk), not one insert
                    // at a time: a map's keys are already distinct.
                    let mut grants = Vec::with_capacity(objects.len());
                    for (object, rights) in objects {
                        // Written out only if an issue names it: a large
                        // artifact grants thousands of objects.
                        let here = Below {
                            parent: &pointer,
                            collection: "objects",
                            step: Step::Key(object),
                        };
                        if is_platform_object(object) {
                            w.warn(&here, format!("`{object}` is one of upstream's platform objects, which objectos does not have; the grant is ignored (ignoring a grant can only narrow access)"));
                            w.ignored.push(IgnoredGrant {
                                permission_set: set.name.clone(),
                                target: object.to_string(),
                            });
                            continue;
                        }
                        let exists = model.object(object).is_some();
                        if !exists {
                            w.missing_object(&here, object);
                        }
                        // Read the rights even of a missing object: a refused scope
                        // is worth reporting in the same run.
                        if let Some(rights) = read_rights(w, rights, &here)
                            && exists
                        {
                            grants.push((object.to_string(), rights));
                        }
                    }
                    set.objects = grants.into_iter().collect();
                }
            }
        }
        if let Some(fields) = map.get("fields")
            && let Some(fields) = w.object(fields, &format!("{pointer}/fields"), "`fields`")
        {
            for (key, rights) in fields {
                let here = format!("{pointer}/fields/{}", esc(key));
                let Some((object, field)) = key.split_once('.') else {
                    w.err(&here, format!("`{key}` must be written `object.field` (upstream ignores a bare field name, which would grant nothing you meant)"));
                    continue;
                };
                if is_platform_object(object) {
                    w.warn(&here, format!("`{object}` is one of upstream's platform objects, which objectos does not have; the field grant is ignored (ignoring a grant can only narrow access)"));
                    w.ignored.push(IgnoredGrant {
                        permission_set: set.name.clone(),
                        target: key.to_string(),
                    });
                    continue;
                }
                if SYSTEM_FIELDS.contains(&field) && model.object(object).is_some() {
                    // Whoever reads a record reads its system fields, and only
                    // objectos writes them (`owner_id`: holders of modifyAllRecords).
                    if let Some(rights) = w.object(rights, &here, "field rights") {
                        if w.opt_bool(rights, "readable", &here) == Some(false) {
                            w.unenforced(
                                &here,
                                &format!("hiding the system field `{field}` (field rights)"),
                            );
                        } else {
                            w.warn(&here, format!("field rights on the system field `{field}` are ignored: whoever reads a record reads its system fields, and objectos writes them"));
                        }
                    }
                    continue;
                }
                match model.object(object) {
                    None => {
                        w.missing_object(&here, object);
                        continue;
                    }
                    Some(o) if o.field(field).is_none() => {
                        let hint = keys::suggest(
                            field,
                            &o.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                        )
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                        w.err(&here, format!("`{object}` has no field `{field}`{hint}"));
                        continue;
                    }
                    Some(_) => {}
                }
                let Some(rights_map) = w.object(rights, &here, "field rights") else {
                    continue;
                };
                w.unknown_keys(rights_map, &here, keys::field_permission(), "field rights");
                let readable = w.opt_bool(rights_map, "readable", &here).unwrap_or(true);
                let editable = w.opt_bool(rights_map, "editable", &here).unwrap_or(false);
                set.fields.insert(
                    (object.to_string(), field.to_string()),
                    FieldRights { readable, editable },
                );
            }
        }
        let system = w.str_list(map, "systemPermissions", &pointer);
        w.permissions(&system, &format!("{pointer}/systemPermissions"));
        set.system_permissions = system.into_iter().collect();
        out.push(set);
    }
    out
}

/// The entries of an object's grant that validation reads, found in one pass
/// over the grant, each other key reported where it is not a key of a grant,
/// as `unknown_keys` does (see [`FieldEntries`]): a large artifact grants
/// thousands of objects, and a lookup per key read was most of the time
/// spent on its permission sets, after the objects' walk, on one thread.
#[derive(Default)]
struct RightsEntries<'v, 'j> {
    allow_read: Option<&'v Value<'j>>,
    allow_create: Option<&'v Value<'j>>,
    allow_edit: Option<&'v Value<'j>>,
    allow_delete: Option<&'v Value<'j>>,
    allow_export: Option<&'v Value<'j>>,
    allow_restore: Option<&'v Value<'j>>,
    allow_purge: Option<&'v Value<'j>>,
    view_all: Option<&'v Value<'j>>,
    modify_all: Option<&'v Value<'j>>,
    read_scope: Option<&'v Value<'j>>,
    write_scope: Option<&'v Value<'j>>,
}

impl<'v, 'j> RightsEntries<'v, 'j> {
    fn read(w: &mut Walker<'_>, map: &'v Map<'j>, pointer: &(impl fmt::Display + ?Sized)) -> Self {
        let mut found = RightsEntries::default();
        for (key, value) in map {
            // One candidate per length and first and sixth byte, then the
            // whole key compared.
            let bytes = key.as_bytes();
            let (b0, b5) = (bytes.first().copied(), bytes.get(5).copied());
            let candidate = match (bytes.len(), b0, b5) {
                (9, Some(b'a'), Some(b'R')) => ("allowRead", &mut found.allow_read),
                (9, Some(b'a'), Some(b'E')) => ("allowEdit", &mut found.allow_edit),
                (9, Some(b'r'), _) => ("readScope", &mut found.read_scope),
                (10, Some(b'a'), _) => ("allowPurge", &mut found.allow_purge),
                (10, Some(b'w'), _) => ("writeScope", &mut found.write_scope),
                (11, Some(b'a'), Some(b'C')) => ("allowCreate", &mut found.allow_create),
                (11, Some(b'a'), Some(b'D')) => ("allowDelete", &mut found.allow_delete),
                (11, Some(b'a'), Some(b'E')) => ("allowExport", &mut found.allow_export),
                (12, Some(b'a'), _) => ("allowRestore", &mut found.allow_restore),
                (14, Some(b'v'), _) => ("viewAllRecords", &mut found.view_all),
                (16, Some(b'm'), _) => ("modifyAllRecords", &mut found.modify_all),
                _ => {
                    w.unknown_key(key, pointer, keys::object_permission(), "object rights");
                    continue;
                }
            };
            match candidate {
                (expected, slot) if json::same_key(key, expected) => *slot = Some(value),
                _ => w.unknown_key(key, pointer, keys::object_permission(), "object rights"),
            }
        }
        found
    }
}

fn read_rights(
    w: &mut Walker<'_>,
    value: &Value<'_>,
    pointer: &(impl fmt::Display + ?Sized),
) -> Option<ObjectRights> {
    let map = w.object(value, pointer, "object rights")?;
    let entries = RightsEntries::read(w, map, pointer);
    for (carried, given) in [
        ("allowRestore", entries.allow_restore),
        ("allowPurge", entries.allow_purge),
    ] {
        if given == Some(&Value::Bool(true)) {
            w.warn(&format!("{pointer}/{carried}"), format!("`{carried}` grants an operation objectos does not offer; it is carried, not enforced"));
        }
    }
    let scope = |w: &mut Walker<'_>, key: &str, given: Option<&Value<'_>>| -> bool {
        match w.str_of(given, key, pointer) {
            None | Some("own") => false,
            Some("org") => true,
            Some(s @ ("own_and_reports" | "unit" | "unit_and_below")) => {
                w.unenforced(
                    &format!("{pointer}/{key}"),
                    &format!("`{key}: {s}` (hierarchy scopes)"),
                );
                false
            }
            Some(other) => {
                w.err(
                    &format!("{pointer}/{key}"),
                    format!("`{other}` is not a scope; use `own` or `org`"),
                );
                false
            }
        }
    };
    let read_org = scope(w, "readScope", entries.read_scope);
    let write_org = scope(w, "writeScope", entries.write_scope);
    // A right not given is not granted.
    let right = |w: &mut Walker<'_>, given: Option<&Value<'_>>, key: &str| {
        w.bool_of(given, key, pointer).unwrap_or(false)
    };
    let rights = ObjectRights {
        read: right(w, entries.allow_read, "allowRead"),
        create: right(w, entries.allow_create, "allowCreate"),
        edit: right(w, entries.allow_edit, "allowEdit"),
        delete: right(w, entries.allow_delete, "allowDelete"),
        view_all: right(w, entries.view_all, "viewAllRecords"),
        modify_all: right(w, entries.modify_all, "modifyAllRecords"),
        export: right(w, entries.allow_export, "allowExport"),
        read_org,
        write_org,
    };
    // In objectos every write right implies read. Upstream honours a write right
    // with `allowRead: false` said outright (an insert-only web form, say):
    // reading it as objectos does would let that set read what its author
    // withheld, so it is refused by name. Left unsaid, read is implied.
    if entries.allow_read == Some(&Value::Bool(false))
        && (rights.create || rights.edit || rights.delete)
        && !(rights.view_all || rights.modify_all)
    {
        w.unenforced(
            &format!("{pointer}/allowRead"),
            "`allowRead: false` beside `allowCreate`, `allowEdit` or `allowDelete` (write without read, such as an insert-only form)",
        );
    }
    Some(rights)
}

fn validate_sharing_rules(w: &mut Walker<'_>, doc: &Map<'_>, model: &Model) -> Vec<SharingRuleDef> {
    let mut out: Vec<SharingRuleDef> = Vec::new();
    for (i, value) in w.array(doc, "sharingRules").iter().enumerate() {
        let pointer = format!("/sharingRules/{i}");
        let Some(map) = w.object(value, &pointer, "a sharing rule") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::sharing_rule(), "a sharing rule");
        let name = w
            .req_str(map, "name", &pointer, "give the rule a snake_case name")
            .map(str::to_string);
        if let Some(name) = &name
            && out.iter().any(|r| r.name == *name)
        {
            w.err(
                &format!("{pointer}/name"),
                format!("the sharing rule `{name}` is defined twice"),
            );
        }
        let object = w
            .req_str(
                map,
                "object",
                &pointer,
                "name the object whose records the rule shares",
            )
            .map(str::to_string);
        let object_def = object.as_deref().and_then(|o| {
            let found = model.object(o);
            if found.is_none() {
                w.missing_object(&format!("{pointer}/object"), o);
            }
            found
        });
        if let Some(o) = object_def
            && o.sharing_model == SharingModel::ControlledByParent
        {
            w.err(&format!("{pointer}/object"), format!("`{}` is `controlled_by_parent`: its records follow their parent's access; share the parent object instead", o.name));
        }
        if let Some(kind) = w.opt_str(map, "type", &pointer)
            && kind != "criteria"
        {
            w.err(&format!("{pointer}/type"), format!("`{kind}` sharing rules are not part of protocol {PROTOCOL_MAJOR}; only `criteria` rules exist"));
        }
        let active = w.opt_bool(map, "active", &pointer).unwrap_or(true);
        let access = match w.opt_str(map, "accessLevel", &pointer) {
            None | Some("read") => Some(AccessLevel::Read),
            Some("edit") => Some(AccessLevel::Edit),
            Some(other) => {
                w.err(
                    &format!("{pointer}/accessLevel"),
                    format!("`{other}` is not an access level; use `read` or `edit`"),
                );
                None
            }
        };
        let shared_with = match map.get("sharedWith") {
            None => {
                w.err(&pointer, "`sharedWith` is missing; say who gets access, as `{\"type\": \"team\", \"value\": \"finance\"}`");
                None
            }
            Some(v) => read_grantee(w, v, &format!("{pointer}/sharedWith")),
        };
        let condition_source = map.get("condition").map(Value::to_serde);
        let condition = match &condition_source {
            None => {
                w.err(&pointer, "`condition` is missing; give an ObjectQL filter or `{\"dialect\": \"cel\", \"source\": \"record.stage == 'won'\"}`");
                None
            }
            Some(c) => {
                match Filter::from_condition(c) {
                    Ok(filter) if filter.is_match_all() => {
                        w.err(&format!("{pointer}/condition"), "the condition matches every record; upstream never seeds such a rule (it skips it), and objectos refuses it rather than share every record: give the condition a comparison, or grant `viewAllRecords` in a permission set");
                        None
                    }
                    Ok(filter) => {
                        if let Some(o) = object_def {
                            let mut fine = true;
                            for field in filter.fields() {
                                if o.field(field).is_none() && !SYSTEM_FIELDS.contains(&field) {
                                    w.err(&format!("{pointer}/condition"), format!("the condition names `{field}`, which `{}` does not have", o.name));
                                    fine = false;
                                }
                            }
                            if let Err(e) = crate::model::values::check_filter_values(o, &filter) {
                                w.err(&format!("{pointer}/condition"), e);
                                fine = false;
                            }
                            fine.then_some(filter)
                        } else {
                            None
                        }
                    }
                    Err(e) => {
                        w.err(
                            &format!("{pointer}/condition{}", e.pointer),
                            format!("the condition does not parse: {}", e.message),
                        );
                        None
                    }
                }
            }
        };
        if let (
            Some(name),
            Some(object),
            Some(condition),
            Some(access),
            Some(shared_with),
            Some(source),
        ) = (
            name,
            object,
            condition,
            access,
            shared_with,
            condition_source,
        ) {
            out.push(SharingRuleDef {
                name,
                object,
                active,
                condition,
                condition_source: source,
                access,
                shared_with,
            });
        }
    }
    out
}

fn read_grantee(w: &mut Walker<'_>, value: &Value<'_>, pointer: &str) -> Option<Grantee> {
    let map = w.object(value, pointer, "`sharedWith`")?;
    w.unknown_keys(map, pointer, keys::shared_with(), "`sharedWith`");
    let kind = w.req_str(
        map,
        "type",
        pointer,
        "say whether access goes to a `user`, `team` or `position`",
    )?;
    let target = w
        .req_str(map, "value", pointer, "name the user, team or position")?
        .to_string();
    match kind {
        "user" => Some(Grantee::User(target)),
        "team" | "position" => Some(Grantee::Team(target)),
        "unit_and_subordinates" | "business_unit" | "field" => {
            w.unenforced(&format!("{pointer}/type"), &format!("sharing to `{kind}`"));
            None
        }
        other => {
            w.err(
                &format!("{pointer}/type"),
                format!("`{other}` is not a recipient; use `user`, `team` or `position`"),
            );
            None
        }
    }
}

fn validate_actions(w: &mut Walker<'_>, doc: &Map<'_>, model: &Model) -> Vec<ActionDef> {
    let mut out: Vec<ActionDef> = Vec::new();
    for (i, value) in w.array(doc, "actions").iter().enumerate() {
        let pointer = format!("/actions/{i}");
        let Some(map) = w.object(value, &pointer, "an action") else {
            continue;
        };
        w.unknown_keys(map, &pointer, keys::action(), "an action");
        let Some(name) = w.req_str(map, "name", &pointer, "give the action a snake_case name")
        else {
            continue;
        };
        let name = name.to_string();
        if out.iter().any(|a| a.name == name) {
            w.err(&format!("{pointer}/name"), format!("the action `{name}` is defined twice; objectos runs actions by name, so names must be unique"));
            continue;
        }
        let label = match map.get("label") {
            Some(Value::String(s)) => s.to_string(),
            _ => name.clone(),
        };
        let object = w.opt_str(map, "objectName", &pointer).map(str::to_string);
        let object_def = object.as_deref().and_then(|o| {
            let found = model.object(o);
            if found.is_none() {
                w.missing_object(&format!("{pointer}/objectName"), o);
            }
            found
        });
        let action_type = w
            .opt_str(map, "type", &pointer)
            .unwrap_or("script")
            .to_string();
        let required_permissions = w.str_list(map, "requiredPermissions", &pointer);
        w.permissions(
            &required_permissions,
            &format!("{pointer}/requiredPermissions"),
        );
        let mut patch = None;
        match (map.get("operation"), map.get("patch")) {
            (None, None) => {}
            (Some(Value::String(op)), Some(Value::Object(p))) if op == "update" => {
                match object_def {
                    None if object.is_none() => w.err(
                        &pointer,
                        "an `update` action needs `objectName`, the object whose record it changes",
                    ),
                    None => {}
                    Some(o) => {
                        for (field, v) in p {
                            let here = format!("{pointer}/patch/{}", esc(field));
                            match o.field(field) {
                                None if SYSTEM_FIELDS.contains(&field) => w.err(
                                    &here,
                                    format!("`{field}` is a system field that objectos sets; an action cannot set it"),
                                ),
                                None => {
                                    w.err(&here, format!("`{}` has no field `{field}`", o.name))
                                }
                                Some(f) if f.readonly => w.err(
                                    &here,
                                    format!("`{field}` is read-only; an action cannot set it"),
                                ),
                                Some(f) => {
                                    if let Err(why) = crate::model::values::check_value(f, &v.to_serde()) {
                                        w.err(
                                            &here,
                                            format!("the value does not fit `{field}`: {why}"),
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                patch = Some(p.to_serde());
            }
            (Some(Value::String(op)), None) if op == "update" && !map.contains_key("params") => {
                w.err(
                    &pointer,
                    "an `update` action needs a `patch` of field values",
                );
            }
            (Some(other), _) if other.as_str() != Some("update") => {
                w.err(
                    &format!("{pointer}/operation"),
                    format!("`{other}` is not an action operation; the only one is `update`"),
                );
            }
            (None, Some(_)) => w.err(
                &format!("{pointer}/patch"),
                "`patch` needs `operation: \"update\"`",
            ),
            (_, Some(other)) => w.err(
                &format!("{pointer}/patch"),
                format!(
                    "`patch` must be a map of field to value, not {}",
                    type_name(other)
                ),
            ),
            _ => {}
        }
        let ai = map.get("ai").and_then(Value::as_object);
        if let Some(ai_map) = ai {
            w.unknown_keys(
                ai_map,
                &format!("{pointer}/ai"),
                keys::action_ai(),
                "an action's `ai` block",
            );
        }
        let confirm_text = match map.get("confirmText") {
            Some(Value::String(s)) => Some(s.to_string()),
            Some(Value::Object(locales)) => {
                locales.values().find_map(Value::as_str).map(str::to_string)
            }
            _ => None,
        };
        out.push(ActionDef {
            name,
            label,
            object,
            action_type,
            patch,
            required_permissions,
            confirm_text,
            variant: w.opt_str(map, "variant", &pointer).map(str::to_string),
            ai_exposed: ai
                .and_then(|a| a.get("exposed"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ai_description: ai
                .and_then(|a| a.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string),
            requires_confirmation: ai
                .and_then(|a| a.get("requiresConfirmation"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a field's validation reads is a key of a field, and is read:
    /// none is reported as unknown, each fills its own entry, and a key that
    /// is not a field's is still reported, in the order of the map.
    #[test]
    fn a_fields_entries_are_read_in_one_pass_and_its_unknown_keys_reported() {
        const READ: [&str; 18] = [
            "name",
            "type",
            "label",
            "required",
            "multiple",
            "unique",
            "readonly",
            "internal",
            "maxLength",
            "minLength",
            "min",
            "max",
            "requiredPermissions",
            "maskingRule",
            "readonlyWhen",
            "reference",
            "options",
            "defaultValue",
        ];
        // Keys one byte away from a key read, where its length and first
        // and third bytes are the same: each is an unknown key.
        const NEAR: [&str; 19] = [
            "mix",
            "nope",
            "tape",
            "lapel",
            "unused",
            "optical",
            "reqXired",
            "reXdonly",
            "mXltiple",
            "inXernal",
            "maxLengtX",
            "minLengtX",
            "referencX",
            "maskingRulX",
            "readonlyWheX",
            "defaultValuX",
            "requiredPermissionX",
            "",
            "é",
        ];
        let (text, expected) = keys_table(
            keys::field(),
            &READ,
            "description",
            &NEAR,
            "/objects/0/fields/f",
        );
        let value = Value::parse(&text).unwrap();
        let map = value.as_object().unwrap();
        let sources = SourceMap::default();
        let mut w = Walker::new(&sources, false);
        let parent = "/objects/0";
        let pointer = Below {
            parent: &parent,
            collection: "fields",
            step: Step::Key("f"),
        };
        let entries = FieldEntries::read(&mut w, map, &pointer);
        let found = [
            entries.name,
            entries.field_type,
            entries.label,
            entries.required,
            entries.multiple,
            entries.unique,
            entries.readonly,
            entries.internal,
            entries.max_length,
            entries.min_length,
            entries.min,
            entries.max,
            entries.required_permissions,
            entries.masking_rule,
            entries.readonly_when,
            entries.reference,
            entries.options,
            entries.default_value,
        ];
        assert_read_and_reported(&READ, &found, &w, &expected);
    }

    /// Every key a grant's validation reads is a key of a grant, and is read
    /// into its own entry; a key that is not read is reported where it is not
    /// a grant's, in the order of the map.
    #[test]
    fn a_grants_entries_are_read_in_one_pass_and_its_unknown_keys_reported() {
        const READ: [&str; 11] = [
            "allowRead",
            "allowCreate",
            "allowEdit",
            "allowDelete",
            "allowExport",
            "allowRestore",
            "allowPurge",
            "viewAllRecords",
            "modifyAllRecords",
            "readScope",
            "writeScope",
        ];
        // Keys one byte away from a key read, most with its length and first
        // and sixth bytes: each is an unknown key.
        const NEAR: [&str; 13] = [
            "allowReaX",
            "allowEdiX",
            "readScopX",
            "allowPurgX",
            "writeScopX",
            "allowCreatX",
            "allowDeletX",
            "allowExporX",
            "allowRestorX",
            "viewAllRecordX",
            "modifyAllRecordX",
            "allowXead",
            "",
        ];
        let pointer = "/permissions/0/objects/x";
        let (text, expected) = keys_table(
            keys::object_permission(),
            &READ,
            "allowTransfer",
            &NEAR,
            pointer,
        );
        let value = Value::parse(&text).unwrap();
        let map = value.as_object().unwrap();
        let sources = SourceMap::default();
        let mut w = Walker::new(&sources, false);
        let entries = RightsEntries::read(&mut w, map, pointer);
        let found = [
            entries.allow_read,
            entries.allow_create,
            entries.allow_edit,
            entries.allow_delete,
            entries.allow_export,
            entries.allow_restore,
            entries.allow_purge,
            entries.view_all,
            entries.modify_all,
            entries.read_scope,
            entries.write_scope,
        ];
        assert_read_and_reported(&READ, &found, &w, &expected);
    }

    /// The text of a map of the keys `read` (each to its index), `known` (a
    /// key of the map's kind that is not read), `near` (unknown keys close to
    /// those read) and two unknown keys around them; and the pointers under
    /// `pointer` that a read of it reports, in the order of the map. Every
    /// key read, and `known`, must be one of `kind`'s keys; no `near` one may.
    fn keys_table(
        kind: &keys::Known,
        read: &[&str],
        known: &str,
        near: &[&str],
        pointer: &str,
    ) -> (String, Vec<String>) {
        for key in read.iter().chain([&known]) {
            assert!(kind.contains(key), "`{key}` is not a key of this kind");
        }
        for key in near {
            assert!(!kind.contains(key), "`{key}` is a key of this kind");
        }
        let mut text = String::from("{\"zzUnknown\": 0");
        for (i, key) in read.iter().enumerate() {
            text.push_str(&format!(", \"{key}\": {i}"));
        }
        text.push_str(&format!(", \"{known}\": \"known, not read\""));
        for key in near {
            text.push_str(&format!(", \"{key}\": \"near\""));
        }
        text.push_str(", \"aaUnknown\": 1}");
        let mut expected = vec![format!("{pointer}/zzUnknown")];
        expected.extend(near.iter().map(|key| format!("{pointer}/{key}")));
        expected.push(format!("{pointer}/aaUnknown"));
        (text, expected)
    }

    /// Each key of `read` was read into its own entry (`found`, in the same
    /// order, holds its index), and `w` reported just `expected`, as warnings.
    fn assert_read_and_reported(
        read: &[&str],
        found: &[Option<&Value<'_>>],
        w: &Walker<'_>,
        expected: &[String],
    ) {
        assert_eq!(read.len(), found.len());
        for (i, (key, value)) in read.iter().zip(found).enumerate() {
            assert_eq!(value.and_then(Value::as_u64), Some(i as u64), "`{key}`");
        }
        let reported: Vec<&str> = w.warnings.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(reported, expected);
        assert!(w.errors.is_empty());
    }

    /// The chunks of a walk in parts cover every object once, in order, and
    /// shrink as the walk goes on, down to [`MIN_CHUNK`] (or what is left).
    #[test]
    fn chunks_cover_the_objects_and_shrink_to_the_end() {
        for (count, parts) in [(64, 2), (100, 3), (2_500, 2), (2_500, 4), (70_001, 2)] {
            let bounds = chunk_bounds(count, parts);
            assert_eq!((bounds[0], *bounds.last().unwrap()), (0, count));
            let sizes: Vec<usize> = bounds.windows(2).map(|b| b[1] - b[0]).collect();
            assert!(sizes.iter().all(|&s| s > 0), "{count}/{parts}: {sizes:?}");
            assert!(
                sizes.windows(2).all(|s| s[1] <= s[0]),
                "{count}/{parts}: chunks grow: {sizes:?}"
            );
            assert!(*sizes.last().unwrap() <= MIN_CHUNK, "{count}/{parts}");
            assert!(sizes[0] <= count.div_ceil(parts * 8), "{count}/{parts}");
        }
        assert_eq!(chunk_bounds(2_500, 2).len() - 1, 71);
    }
}
