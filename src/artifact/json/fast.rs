//! A JSON reader for the text of an artifact's parts, several times faster
//! than going through serde_json's visitor: it reads bytes straight into
//! [`Value`], borrows every string that has no escape, and builds each
//! array and object on one reused stack of items, moved into the arena once
//! it closes.
//!
//! It reads the same trees serde_json reads, or gives up: whatever it does not
//! read itself (an escaped string, a number with a fraction or an exponent, an
//! integer too long to be sure of) it hands to serde_json, token by token, so
//! that every value means exactly what it means there. It never reports why a
//! text is not JSON: where it gives up, the caller asks serde_json, whose
//! message (with line and column) is the one users see.

use super::{Arena, Entry, MAX_NESTING, Map, Number, Scratch, Value};

/// The tree `text` holds and how deeply its arrays and objects nest (a scalar
/// is 0), or `None` for anything but one JSON value with only whitespace
/// around it, nested at most [`MAX_NESTING`] deep. The stacks it reads on are
/// `scratch`'s, kept for the next read: the objects of an artifact are read
/// one after another, and each would otherwise grow stacks of its own. Its
/// arrays, objects and escaped strings go into `scratch`'s arena.
pub(super) fn read<'a>(text: &'a str, scratch: &mut Scratch<'a>) -> Option<(Value<'a>, usize)> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        arena: scratch.arena,
        at: 0,
        depth: 0,
        deepest: 0,
        items: std::mem::take(&mut scratch.items),
        entries: std::mem::take(&mut scratch.entries),
    };
    // serde_json's reader, where this one gave up, may have left values on them.
    reader.items.clear();
    reader.entries.clear();
    let read = reader.value(Place::Item).and_then(|()| {
        reader.skip_whitespace();
        let value = reader.items.pop()?;
        (reader.at == text.len()).then_some((value, reader.deepest))
    });
    // What a text that did not read left on them is dropped now.
    reader.items.clear();
    reader.entries.clear();
    scratch.items = reader.items;
    scratch.entries = reader.entries;
    read
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    arena: &'a Arena,
    at: usize,
    depth: usize,
    deepest: usize,
    /// The items and entries of the arrays and objects being read, innermost
    /// last: each container takes its own off the end once it closes.
    items: Vec<Value<'a>>,
    entries: Vec<Entry<'a>>,
}

/// Where a value goes once read: onto the items of the array being read, or
/// into the entry its key was pushed with. Every value (and key) is stored
/// where it is read, never returned through the stack of a call: reloading
/// a value that its callee wrote a piece at a time (a byte, then words) is a
/// read that no store can forward, and those stalls were most of the
/// reader's time.
#[derive(Clone, Copy)]
enum Place {
    Item,
    Entry(usize),
}

/// What [`Reader::plain`] gives for a string that holds an escape.
struct Escaped;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// `item` pushed onto `stack`, which grows out of line: on the usual path no
/// call comes between reading a value and storing it (a call would have it
/// saved to the stack first, and reloaded).
#[inline(always)]
fn push<T>(stack: &mut Vec<T>, item: T) {
    if stack.len() < stack.capacity() {
        stack.push(item);
    } else {
        push_growing(stack, item);
    }
}

#[cold]
#[inline(never)]
fn push_growing<T>(stack: &mut Vec<T>, item: T) {
    stack.push(item);
}

/// From `at` inside a string, the first quote, backslash or control character
/// (which JSON strings may not hold), or where fewer than eight bytes are left
/// to look at one by one: sixteen bytes at a time (SSE2) while sixteen are
/// left, then eight in a plain word.
#[inline(always)]
fn stop_from(bytes: &[u8], mut at: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..at + 16) {
        let stops = stops_in(chunk);
        if stops != 0 {
            return at + stops.trailing_zeros() as usize;
        }
        at += 16;
    }
    while let Some(chunk) = bytes.get(at..at + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let quote = word ^ (ONES * u64::from(b'"'));
        let escape = word ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte is always a true one.
        let found = ((quote.wrapping_sub(ONES) & !quote)
            | (escape.wrapping_sub(ONES) & !escape)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGHS;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at
}

/// Bit i: whether byte i of 16 is a quote, a backslash or below 0x20.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn stops_in(chunk: &[u8]) -> u32 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, m128i, max_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let Ok(chunk) = <[u8; 16]>::try_from(chunk) else {
        return 0;
    };
    let bytes = m128i::from(chunk);
    let quote = cmp_eq_mask_i8_m128i(bytes, set_splat_i8_m128i(b'"' as i8));
    let escape = cmp_eq_mask_i8_m128i(bytes, set_splat_i8_m128i(b'\\' as i8));
    // Unsigned: at most 0x1f exactly where the larger of it and 0x1f is 0x1f.
    let low = set_splat_i8_m128i(0x1f);
    let control = cmp_eq_mask_i8_m128i(max_u8_m128i(bytes, low), low);
    move_mask_i8_m128i(bitor_m128i(bitor_m128i(quote, escape), control)) as u32 & 0xffff
}

impl<'a> Reader<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Past whitespace, the next byte (not consumed).
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// `value` stored where `into` says.
    #[inline(always)]
    fn put(&mut self, into: Place, value: Value<'a>) -> Option<()> {
        match into {
            Place::Item => push(&mut self.items, value),
            Place::Entry(slot) => {
                // It replaces the `Null` the entry was pushed with.
                self.entries.get_mut(slot)?.1 = value;
            }
        }
        Some(())
    }

    /// One value, stored where `into` says. Each kind is stored by its own
    /// branch: one value built by several branches would be assembled on
    /// the stack before it is stored.
    fn value(&mut self, into: Place) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(into),
            b'[' => self.array(into),
            b'"' => match self.plain()? {
                Ok(text) => self.put(into, Value::String(text)),
                Err(Escaped) => {
                    let string = self.escaped()?;
                    self.put(into, Value::String(string))
                }
            },
            b't' => {
                self.literal(b"true")?;
                self.put(into, Value::Bool(true))
            }
            b'f' => {
                self.literal(b"false")?;
                self.put(into, Value::Bool(false))
            }
            b'n' => {
                self.literal(b"null")?;
                self.put(into, Value::Null)
            }
            b'-' | b'0'..=b'9' => {
                let number = self.number()?;
                self.put(into, Value::Number(number))
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes.get(self.at..self.at + word.len()) != Some(word) {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    /// Into an array or object, within serde_json's nesting limit.
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        (self.depth <= MAX_NESTING).then_some(())
    }

    fn array(&mut self, into: Place) -> Option<()> {
        self.enter()?;
        self.at += 1;
        let start = self.items.len();
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                self.value(Place::Item)?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let items = self.arena.alloc_slice_copy(&self.items[start..]);
        self.items.truncate(start);
        self.put(into, Value::Array(items))
    }

    fn object(&mut self, into: Place) -> Option<()> {
        self.enter()?;
        self.at += 1;
        let start = self.entries.len();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                if self.peek()? != b'"' {
                    return None;
                }
                let slot = self.entries.len();
                match self.plain()? {
                    Ok(key) => push(&mut self.entries, (key, Value::Null)),
                    Err(Escaped) => {
                        let key = self.escaped()?;
                        push(&mut self.entries, (key, Value::Null));
                    }
                }
                if self.peek()? != b':' {
                    return None;
                }
                self.at += 1;
                self.value(Place::Entry(slot))?;
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        let map = Map::from_stack(&mut self.entries, start, self.arena);
        self.put(into, Value::Object(map))
    }

    /// At an opening quote, a string without escapes: its text (and the
    /// reader past it), or `Escaped` (the reader still at the quote).
    #[inline(always)]
    fn plain(&mut self) -> Option<Result<&'a str, Escaped>> {
        let start = self.at + 1;
        let mut at = start;
        loop {
            at = stop_from(self.bytes, at);
            match *self.bytes.get(at)? {
                b'"' => {
                    // Cut at both ends, not `get(start..at)`: that one is
                    // a call of its own on every string, never inlined here.
                    let (before, _) = self.text.split_at_checked(at)?;
                    let (_, text) = before.split_at_checked(start)?;
                    self.at = at + 1;
                    return Some(Ok(text));
                }
                b'\\' => return Some(Err(Escaped)),
                0x00..=0x1f => return None,
                _ => at += 1,
            }
        }
    }

    /// At the opening quote of a string that holds an escape: serde_json
    /// reads it (as it reads a key), into the arena.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self) -> Option<&'a str> {
        let open = self.at;
        let end = super::string_end(self.bytes, open + 1)?;
        let string = super::parse_key(self.text.get(open..end)?, self.arena)?;
        self.at = end;
        Some(string)
    }

    /// A number. Integers of up to 18 digits are read here; the rest (`-0`,
    /// fractions, exponents, longer integers, which serde_json may read as
    /// floats) go to serde_json once their grammar is checked.
    fn number(&mut self) -> Option<Number> {
        let start = self.at;
        let bytes = self.bytes;
        let mut at = start;
        let negative = bytes[at] == b'-';
        if negative {
            at += 1;
        }
        let digits = at;
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => {
                while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
            }
            _ => return None,
        }
        let integer = at;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            at = digits_from(bytes, at)?;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            at = digits_from(bytes, at)?;
        }
        self.at = at;
        if at == integer && integer - digits <= 18 {
            let magnitude = bytes[digits..integer]
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if !negative {
                return Some(magnitude.into());
            }
            if magnitude != 0 {
                // At most 18 digits: always within i64.
                return Some((-(magnitude as i64)).into());
            }
        }
        let number: serde_json::Number = serde_json::from_str(self.text.get(start..at)?).ok()?;
        Some(Number::from(&number))
    }
}

/// Past one or more digits from `at`: where they end.
fn digits_from(bytes: &[u8], mut at: usize) -> Option<usize> {
    let first = at;
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    (at > first).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How deeply the arrays and objects of valid JSON text nest, values a
    /// repeated key drops included (serde_json's limit counts them too).
    fn nesting(text: &str) -> usize {
        let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
        for b in text.bytes() {
            match (in_string, escaped, b) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
                (false, _, b'[' | b'{') => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                (false, _, b']' | b'}') => depth -= 1,
                _ => {}
            }
        }
        deepest
    }

    /// The fast reader takes exactly what serde_json takes, and reads it to
    /// the same tree (numbers of the same kind, keys in the same order, each
    /// once) and nesting.
    fn read<'a>(text: &'a str, arena: &'a Arena) -> Option<(Value<'a>, usize)> {
        super::read(text, &mut Scratch::new(arena))
    }

    /// Whether the fast reader takes `text`.
    fn reads(text: &str) -> bool {
        read(text, &Arena::new()).is_some()
    }

    fn same_as_serde_json(input: &str) {
        let arena = Arena::new();
        let ours = read(input, &arena);
        let theirs = serde_json::from_str::<serde_json::Value>(input);
        match (&ours, &theirs) {
            (Some((value, deepest)), Ok(expected)) => {
                assert_eq!(&value.to_serde(), expected, "{input:?}");
                assert_eq!(
                    super::super::tests::text(value),
                    expected.to_string(),
                    "{input:?}"
                );
                assert_eq!(*deepest, nesting(input), "{input:?}");
                // And the public parse gives the same.
                assert_eq!(
                    Value::parse(input, &arena).ok().as_ref(),
                    Some(value),
                    "{input:?}"
                );
            }
            (None, Err(_)) => {
                // Where it gives up, the parse reports serde_json's own error.
                let said = Value::parse(input, &arena).err().map(|e| e.to_string());
                assert_eq!(
                    said,
                    theirs.as_ref().err().map(|e| e.to_string()),
                    "{input:?}"
                );
            }
            _ => panic!("{input:?}: fast {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads_and_nothing_else() {
        let cases = [
            "{}",
            "[]",
            " \t\n\r{ } \n",
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            r#"{"k":1,"j":2,"k":3}"#,
            r#""plain""#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00 end""#,
            r#""\ud800""#,
            r#""\x""#,
            r#""\u12""#,
            "\"tab\there\"",
            "\"nul\u{0}\"",
            "\"del\u{7f} é ✓ 😀\"",
            r#"{"a\u0062":1,"ab":2}"#,
            "0",
            "-0",
            "-0.0",
            "01",
            "-01",
            "1.",
            ".5",
            "-",
            "--1",
            "+1",
            "1e",
            "1e+",
            "1.5e3",
            "1E-3",
            "2.5e+10",
            "1e999",
            "-1e999",
            "123456789012345678",
            "1234567890123456789",
            "-123456789012345678",
            "-1234567890123456789",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "3.141592653589793238462643383279",
            "true",
            "tru",
            "true1",
            "nul",
            "null ",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{1:2}",
            "{\"a\":1}}",
            "[1]]",
            "[1",
            "\"open",
            "\u{feff}{}",
            "\u{a0}{}",
            "\u{c}{}",
            "{} {}",
            "",
            "   ",
        ];
        for input in cases {
            same_as_serde_json(input);
        }
        // Repeated keys among keys of one length, of lengths past 63, and
        // with other keys of their length between them.
        let long = "k".repeat(70);
        let longer = "k".repeat(71);
        for input in [
            format!(r#"{{"{long}":1,"{longer}":2,"{long}":3}}"#),
            format!(r#"{{"{long}":1,"{long}x":2}}"#),
            r#"{"ab":1,"cd":2,"ef":3,"cd":4,"g":5}"#.to_string(),
            r#"{"ab":1,"cd":2,"ef":3,"gh":4}"#.to_string(),
        ] {
            same_as_serde_json(&input);
        }
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for n in [1, 126, MAX_NESTING, MAX_NESTING + 1, 1000] {
            same_as_serde_json(&nested(n));
            same_as_serde_json(&objects(n));
        }
        // The controls: the ordinary cases are read here, not handed over.
        assert!(reads(r#"{"a":[1,-2,"x"],"b":{}}"#));
        assert!(!reads("[1,]"));
    }

    /// Each value is stored into the entry pushed for its key before it was
    /// read, while the stacks under it grow: wide objects and arrays, nested,
    /// escaped keys and strings among them, a key repeated at the top.
    #[test]
    fn wide_nested_containers_read_as_serde_json_reads_them() {
        let item = |i: usize| match i % 4 {
            0 => format!("\"s{i}\""),
            1 => format!("\"e\\u00e9{i}\""),
            2 => i.to_string(),
            _ => r#"[true,null,{"k\n":false,"k":-1.5}]"#.to_string(),
        };
        let array = format!("[{}]", (0..40).map(item).collect::<Vec<_>>().join(","));
        let entry = |i: usize| {
            let key = if i.is_multiple_of(5) { "\\t" } else { "" };
            let value = if i.is_multiple_of(2) {
                array.clone()
            } else {
                item(i)
            };
            format!("\"k{key}{i}\":{value}")
        };
        let object = format!("{{{}}}", (0..40).map(entry).collect::<Vec<_>>().join(","));
        for input in [
            format!("[{object},{array},{object}]"),
            format!(r#"{{"a":{object},"b":[{object},{{}}],"a\u0062":[],"a":{array}}}"#),
        ] {
            same_as_serde_json(&input);
            assert!(reads(&input), "read here, not handed over");
        }
    }

    /// Texts read one after another on the same stacks read as each reads
    /// alone, also after one that stopped halfway (its leftovers on them).
    #[test]
    fn stacks_kept_between_reads_leave_nothing_behind() {
        let texts = [
            r#"{"a":[1,{"b":"x"}],"c":"d"}"#,
            r#"{"a":[1,{"b":"x\u0041"},"#,
            r#"{"a":{"b":{"c":[true,"\u00e9",null]}},"e":[]}"#,
            "[1,2,",
            r#"{"k":"v","k":"w"}"#,
            "[]",
            r#"{"#,
            r#"{"z":[[],[{}],"s"]}"#,
        ];
        let arena = Arena::new();
        let mut shared = Scratch::new(&arena);
        for text in texts {
            let alone = read(text, &arena);
            assert_eq!(super::read(text, &mut shared), alone, "{text}");
            assert!(
                shared.items.is_empty() && shared.entries.is_empty(),
                "{text}"
            );
        }
        // The controls: some of them read, some do not.
        assert!(reads(texts[0]) && !reads(texts[1]));
    }

    /// Strings of every length up to past two blocks of sixteen, with a quote,
    /// a backslash (as an escape), a control character, a multi-byte
    /// character or a byte of 0x7f or 0x20 at every position, read as
    /// serde_json reads them. The controls: some read, some do not.
    #[test]
    fn every_kind_of_byte_at_every_place_in_a_string_reads_as_serde_json_reads_it() {
        let (mut read_ok, mut refused) = (0, 0);
        for n in 0..40usize {
            for at in 0..n.max(1) {
                for odd in [
                    "\\\"", "\\\\", "\\n", "\u{1}", "\u{1f}", "\t", "é", "\u{7f}", " ", "\"",
                ] {
                    let mut inner: String =
                        (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                    if n > 0 {
                        inner.replace_range(at..at + 1, odd);
                    }
                    let text = format!("{{\"k{inner}\":\"{inner}\",\"x\":[\"{inner}\"]}}");
                    same_as_serde_json(&text);
                    if reads(&text) {
                        read_ok += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        assert!(read_ok > 1_000 && refused > 1_000, "{read_ok} {refused}");
    }

    /// Random documents, and the same with one byte changed, read as
    /// serde_json reads them.
    #[test]
    fn random_documents_and_their_mutations_read_as_serde_json_reads_them() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        fn document(next: &mut dyn FnMut(usize) -> usize, depth: usize) -> String {
            let pick = if depth > 4 { next(6) } else { next(8) };
            match pick {
                0 => "null".into(),
                1 => ["true", "false"][next(2)].into(),
                2 => [
                    "0",
                    "-7",
                    "42",
                    "1.5",
                    "-0",
                    "1e3",
                    "12345678901234567890",
                    "-2.5E-3",
                ][next(8)]
                .into(),
                3..=5 => [
                    "\"a\"",
                    "\"\"",
                    "\"q\\\"uote\"",
                    "\"é\\u00e9\"",
                    "\"name\"",
                    "\"long string of text here\"",
                ][next(6)]
                .into(),
                6 => {
                    let items: Vec<String> =
                        (0..next(4)).map(|_| document(next, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                _ => {
                    let keys = ["a", "b", "name", "a"];
                    let items: Vec<String> = (0..next(4))
                        .map(|_| format!("\"{}\":{}", keys[next(4)], document(next, depth + 1)))
                        .collect();
                    format!("{{{}}}", items.join(", "))
                }
            }
        }
        let alphabet = b"{}[]\",:\\ 0-1.eE+tnu\x01a";
        let mut taken = 0;
        for _ in 0..3000 {
            let text = document(&mut next, 0);
            same_as_serde_json(&text);
            let mut bytes = text.clone().into_bytes();
            let at = next(bytes.len());
            match next(3) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[next(alphabet.len())]),
                _ => bytes[at] = alphabet[next(alphabet.len())],
            }
            if let Ok(mutated) = String::from_utf8(bytes) {
                same_as_serde_json(&mutated);
                taken += usize::from(reads(&mutated));
            }
        }
        // The control: mutations are not all broken documents.
        assert!(taken > 100, "{taken}");
    }
}
