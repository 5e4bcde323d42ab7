//! The walker that validation carries through a definition: what it has
//! found so far, and the helpers that read a key and report what is wrong
//! with it, each issue with its JSON pointer and source file.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::artifact::build::SourceMap;
use crate::artifact::json::{Map, Value};
use crate::artifact::keys;
use crate::model::*;

use super::Issue;

pub(super) struct Walker<'a> {
    pub(super) sources: &'a SourceMap,
    pub(super) strict: bool,
    pub(super) errors: Vec<Issue>,
    pub(super) warnings: Vec<Issue>,
    /// Every object name the definition declares, valid or not: a reference to a
    /// declared but invalid object is not reported again. Shared by the
    /// walker's forks.
    pub(super) declared: Arc<BTreeSet<String>>,
    /// Permission names known up front: objectos's, upstream's, and the app's
    /// declared capabilities. Shared by the walker's forks.
    pub(super) perms_known: Arc<BTreeSet<String>>,
    /// Names used without a declaration, in order of first use.
    pub(super) undeclared: Vec<String>,
    /// For each of `undeclared`, the index in `warnings` of the warning its
    /// first use gave (`usize::MAX` where this walker gave none).
    pub(super) undeclared_warnings: Vec<usize>,
    /// Grants on upstream platform objects, dropped.
    pub(super) ignored: Vec<IgnoredGrant>,
}

/// A JSON pointer to an entry of a collection under `parent` (a field of an
/// object, an option of a field), written out only when an issue names it:
/// most entries have none, and formatting every pointer cost a seventh of
/// validating a large artifact.
#[derive(Clone, Copy)]
pub(super) struct Below<'a> {
    pub(super) parent: &'a dyn fmt::Display,
    pub(super) collection: &'static str,
    pub(super) step: Step<'a>,
}

#[derive(Clone, Copy)]
pub(super) enum Step<'a> {
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

pub(super) fn esc(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

pub(super) fn is_snake(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// `com.example.crm`: two or more dot-separated labels of lower-case letters,
/// digits, `-` and `_`.
pub(super) fn is_reverse_dns(id: &str) -> bool {
    let parts: Vec<&str> = id.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
}

pub(super) fn type_name(value: &Value<'_>) -> &'static str {
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
    pub(super) fn new(sources: &'a SourceMap, strict: bool) -> Self {
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

    pub(super) fn issue(&self, pointer: &(impl fmt::Display + ?Sized), message: String) -> Issue {
        let pointer = pointer.to_string();
        Issue {
            file: self.sources.file_of(&pointer).map(Path::to_path_buf),
            pointer,
            message,
        }
    }

    pub(super) fn err(
        &mut self,
        pointer: &(impl fmt::Display + ?Sized),
        message: impl Into<String>,
    ) {
        let issue = self.issue(pointer, message.into());
        self.errors.push(issue);
    }

    pub(super) fn warn(
        &mut self,
        pointer: &(impl fmt::Display + ?Sized),
        message: impl Into<String>,
    ) {
        let issue = self.issue(pointer, message.into());
        self.warnings.push(issue);
    }

    /// Fail closed: a construct that changes access and that objectos does not enforce.
    pub(super) fn unenforced(&mut self, pointer: &(impl fmt::Display + ?Sized), construct: &str) {
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
    pub(super) fn permissions(&mut self, list: &[String], pointer: &(impl fmt::Display + ?Sized)) {
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
    pub(super) fn fork(&self) -> Walker<'a> {
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
    pub(super) fn join(&mut self, part: Walker<'a>) {
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
    pub(super) fn missing_object(&mut self, pointer: &(impl fmt::Display + ?Sized), name: &str) {
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

    pub(super) fn unknown_keys(
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

    /// [`Walker::unknown_keys`] for one key. Checked in line, reported out
    /// of line: almost every key is known (the bench artifact has 105,000
    /// keys of fields and select options that validation knows but does not
    /// read), and a call for each, with the report's frame, cost more than
    /// the check (callgrind on its verify: 5.7M instructions).
    #[inline]
    pub(super) fn unknown_key(
        &mut self,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        known: &keys::Known,
        what: &str,
    ) {
        if !known.contains(key) && !keys::is_envelope(key) {
            self.report_unknown(key, pointer, known, what);
        }
    }

    #[cold]
    #[inline(never)]
    fn report_unknown(
        &mut self,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        known: &keys::Known,
        what: &str,
    ) {
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

    pub(super) fn object<'v, 'j>(
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

    pub(super) fn opt_str<'v>(
        &mut self,
        map: &'v Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<&'v str> {
        self.str_of(map.get(key), key, pointer)
    }

    /// [`Walker::opt_str`] of the value found for `key`.
    #[inline]
    pub(super) fn str_of<'v>(
        &mut self,
        value: Option<&'v Value<'_>>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<&'v str> {
        self.typed(value, key, pointer, |value| match value {
            Value::String(s) => Ok(*s),
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
    pub(super) fn typed<'v, 'j, T>(
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
    pub(super) fn must_be(
        &mut self,
        pointer: &(impl fmt::Display + ?Sized),
        key: &str,
        must_be: String,
    ) {
        self.err(
            &format!("{pointer}/{}", esc(key)),
            format!("`{key}` must be {must_be}"),
        );
    }

    pub(super) fn req_str<'v>(
        &mut self,
        map: &'v Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
        hint: &str,
    ) -> Option<&'v str> {
        self.req_str_of(map.get(key), key, pointer, hint)
    }

    /// [`Walker::req_str`] of the value found for `key`.
    pub(super) fn req_str_of<'v>(
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

    pub(super) fn opt_bool(
        &mut self,
        map: &Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Option<bool> {
        self.bool_of(map.get(key), key, pointer)
    }

    /// [`Walker::opt_bool`] of the value found for `key`.
    #[inline]
    pub(super) fn bool_of(
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
    pub(super) fn number_of(
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
    pub(super) fn count_of(
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

    pub(super) fn str_list(
        &mut self,
        map: &Map<'_>,
        key: &str,
        pointer: &(impl fmt::Display + ?Sized),
    ) -> Vec<String> {
        self.str_list_of(map.get(key), key, pointer)
    }

    /// [`Walker::str_list`] of the value found for `key`.
    pub(super) fn str_list_of(
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

    pub(super) fn array<'v, 'j>(&mut self, doc: &'v Map<'j>, key: &str) -> &'v [Value<'j>] {
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
