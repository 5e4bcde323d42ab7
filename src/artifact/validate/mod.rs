//! Validation: every problem of a definition at once, each with its JSON pointer and
//! source file, and a message that says how to fix it. A definition that passes
//! becomes a [`Model`].
//!
//! This file walks a definition (its objects in parts, on several threads,
//! when there are many) and puts the model together; each part of a
//! definition has a file of its own: the manifest and objectos's policy, an
//! object, a field, permission sets and sharing rules, actions. What they
//! share, the walker that collects the issues, is in `walker.rs`.

mod access;
mod actions;
mod field;
mod manifest;
mod object;
mod walker;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact::build::SourceMap;
use crate::artifact::json::{self, Value};
use crate::artifact::keys;
use crate::model::*;
use access::{validate_permission_sets, validate_sharing_rules};
use actions::validate_actions;
use manifest::{collect_names, read_policy, validate_manifest};
use object::validate_object;
use walker::{Walker, esc};

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
/// objects are parsed as they are walked, in parts, each tree's memory reused
/// for the next. The report is the one [`validate`] gives on the whole tree, or
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
    /// text is read on `scratch`'s stacks, into its arena.
    fn tree<'s>(self, i: usize, scratch: &mut json::Scratch<'s>) -> Option<Value<'s>>
    where
        'v: 's,
        'j: 's,
    {
        match self {
            Elements::Trees(values) => Some(values[i]),
            Elements::Text(elements) => elements[i].parse_on(scratch),
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
    // Each object's tree is read into `arena`, emptied first: into the
    // memory the last one took (still in cache), not into fresh pages.
    let walk = |w: &mut Walker<'_>, range: std::ops::Range<usize>, arena: &mut json::Arena| {
        // Grown by doubling, not sized to the chunk: every chunk's own size
        // would be a size of its own to the allocator, each in a fresh page
        // of its own (and a fresh huge page zeroed for the first touch).
        let mut objects = Vec::new();
        for i in range {
            arena.reset();
            let mut scratch = json::Scratch::new(arena);
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
        objects = walk(&mut w, 0..count, &mut json::Arena::new())?;
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
            let mut arena = json::Arena::new();
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    return done;
                }
                let mut fork = w.fork();
                let range = bounds[chunk]..bounds[chunk + 1];
                let walked = walk(&mut fork, range, &mut arena).map(|objects| (fork, objects));
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
        // Unstable (each chunk is there once): a stable sort would allocate
        // a buffer, on this last stretch where only this thread works and
        // a fresh page is a fresh huge page to zero.
        walked.sort_unstable_by_key(|(chunk, _)| *chunk);
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

/// What the tests of a one-pass read of a map's keys share (a field's, a
/// grant's).
#[cfg(test)]
mod key_tables {
    use super::*;

    /// The text of a map of the keys `read` (each to its index), `known` (a
    /// key of the map's kind that is not read), `near` (unknown keys close to
    /// those read) and two unknown keys around them; and the pointers under
    /// `pointer` that a read of it reports, in the order of the map. Every
    /// key read, and `known`, must be one of `kind`'s keys; no `near` one may.
    pub(super) fn keys_table(
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
    pub(super) fn assert_read_and_reported(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
