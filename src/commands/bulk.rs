//! `objectos import`, `export` and `transfer`: bulk data through the same
//! enforcement path and audit as the API, acting as a named user.
//!
//! # How an import reads its file
//!
//! JSON lines: one record per line (`\n` or `\r\n`); a bad line is that line
//! only. CSV: see [`CsvScanner`] for how records are split and how far a broken
//! one reaches. Line numbers count from 1, the header row being line 1 of a CSV
//! file, whatever the line ends.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::audit::{self, Event, Origin};
use crate::authz::access::ObjectAccess;
use crate::cli::{ExportArgs, ImportArgs, TransferArgs};
use crate::commands::Ctx;
use crate::commands::runtime::required_model;
use crate::error::{ApiError, Exit, Failure};
use crate::model::filter::{Filter, Op};
use crate::output::stdio::{Input, OutputPath, at_most_one_stdin};
use crate::query::request::QuerySpec;
use crate::records::{Caller, Records, convert};

/// The longest line (one record) an import reads.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Serialize, JsonSchema)]
pub struct ImportReport {
    pub object: String,
    pub user: String,
    /// Rows read (blank lines and the CSV header row are not rows): those
    /// imported and those skipped.
    pub read: usize,
    pub imported: usize,
    pub skipped: Vec<SkippedRow>,
    pub seconds: f64,
    pub rows_per_second: f64,
}

#[derive(Serialize, JsonSchema)]
pub struct SkippedRow {
    /// The line the row starts on; the file's first line is 1.
    pub line: usize,
    pub code: String,
    pub message: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ExportReport {
    pub object: String,
    pub user: String,
    pub exported: usize,
    pub output: Option<String>,
}

fn api_failure(e: ApiError) -> anyhow::Error {
    let exit = e.exit();
    Failure::new(exit, format!("{} ({})", e.message, e.code)).into()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// One row of an import, or why the record at a line is not one.
enum Row {
    /// The line the row starts on, and its fields.
    Fields(usize, Map<String, Value>),
    /// The line, and why: this record only; the rows after it are read on.
    Invalid(usize, String),
}

/// Rows of an import: JSON lines, or CSV with a header row.
enum Rows {
    Jsonl {
        reader: Box<dyn BufRead>,
        line: usize,
        bytes: u64,
    },
    Csv {
        scanner: CsvScanner<Box<dyn BufRead>>,
        header: Vec<String>,
    },
}

/// Read one line (through its `\n`) into `buf`, keeping at most
/// `MAX_LINE_BYTES + 1` bytes of it; the line's full length is returned.
fn read_bounded_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    let mut total = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let n = chunk.len();
        if buf.len() + n <= MAX_LINE_BYTES + 1 {
            buf.extend_from_slice(chunk);
        }
        total += n;
        reader.consume(n);
        if done {
            return Ok(total);
        }
    }
}

impl Rows {
    /// Bytes read so far.
    fn bytes(&self) -> u64 {
        match self {
            Rows::Jsonl { bytes, .. } => *bytes,
            Rows::Csv { scanner, .. } => scanner.bytes,
        }
    }

    /// The next row; `Err` (what went wrong, naming the line) when the input
    /// cannot be read on.
    fn next(&mut self, object: &crate::model::ObjectDef) -> Result<Option<Row>, String> {
        match self {
            Rows::Jsonl {
                reader,
                line,
                bytes,
            } => {
                let mut buf = Vec::new();
                loop {
                    let n = read_bounded_line(reader, &mut buf)
                        .map_err(|e| format!("line {}: cannot read: {e}", *line + 1))?;
                    if n == 0 {
                        return Ok(None);
                    }
                    *line += 1;
                    *bytes += n as u64;
                    if n > MAX_LINE_BYTES {
                        return Ok(Some(Row::Invalid(
                            *line,
                            format!(
                                "the line is longer than {} MiB",
                                MAX_LINE_BYTES / (1024 * 1024)
                            ),
                        )));
                    }
                    let mut text = &buf[..];
                    if *line == 1 {
                        text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
                    }
                    let text = match std::str::from_utf8(text) {
                        Ok(t) => t.trim(),
                        Err(_) => {
                            return Ok(Some(Row::Invalid(*line, "the line is not UTF-8".into())));
                        }
                    };
                    if text.is_empty() {
                        continue;
                    }
                    return Ok(Some(match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(map)) => Row::Fields(*line, map),
                        Ok(_) => {
                            Row::Invalid(*line, "each line is a JSON object of field values".into())
                        }
                        Err(e) => Row::Invalid(*line, format!("not JSON: {e}")),
                    }));
                }
            }
            Rows::Csv { scanner, header } => match scanner.next() {
                Ok(None) => Ok(None),
                Ok(Some(CsvItem::Invalid { line, message })) => Ok(Some(Row::Invalid(
                    line,
                    format!("malformed CSV: {message}"),
                ))),
                Ok(Some(CsvItem::Record { line, fields })) => {
                    let mut map = Map::new();
                    for (name, cell) in header.iter().zip(fields) {
                        let value = match object.field(name) {
                            Some(field) => match convert::from_text(field, &cell) {
                                Ok(Some(v)) => v,
                                Ok(None) => continue,
                                Err(why) => {
                                    return Ok(Some(Row::Invalid(line, format!("`{name}` {why}"))));
                                }
                            },
                            // Unknown columns go through as text; the records
                            // service refuses them by name.
                            None if cell.is_empty() => continue,
                            None => Value::String(cell),
                        };
                        map.insert(name.clone(), value);
                    }
                    Ok(Some(Row::Fields(line, map)))
                }
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// A record as [`CsvScanner`] splits it.
#[derive(Debug, PartialEq)]
enum CsvItem {
    /// A well-formed record: the line it starts on, and its fields.
    Record { line: usize, fields: Vec<String> },
    /// A broken record confined to the line it starts on (or to the lines a
    /// well-formed quoted field spans); the next record starts after it.
    Invalid { line: usize, message: String },
}

/// Why a CSV scan cannot go on.
#[derive(Debug)]
enum ScanError {
    Io {
        line: usize,
        error: std::io::Error,
    },
    /// A quoted field runs over line breaks and does not end cleanly: where the
    /// records after the line it starts on begin cannot be known.
    Quoting {
        line: usize,
        message: String,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Io { line, error } => write!(f, "line {line}: cannot read: {error}"),
            ScanError::Quoting { line, message } => write!(f, "line {line}: {message}"),
        }
    }
}

/// Where the scanner is within a record.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Quote {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: the closing quote, or the first of `""`.
    MaybeClosed,
    /// `\r` after a closing quote: a line end must follow.
    ClosedCr,
    /// The rest of a line whose record is broken.
    SkipLine,
}

/// A record being split: its fields, and its size for the limit.
#[derive(Default)]
struct Building {
    fields: Vec<Vec<u8>>,
    field: Vec<u8>,
    count: usize,
    size: usize,
}

impl Building {
    fn push(&mut self, b: u8) {
        self.size += 1;
        if self.size <= MAX_LINE_BYTES {
            self.field.push(b);
        }
    }

    fn end_field(&mut self) {
        self.size += 1;
        self.count += 1;
        let field = std::mem::take(&mut self.field);
        if self.size <= MAX_LINE_BYTES {
            self.fields.push(field);
        }
    }
}

/// Splits CSV into records: RFC 4180, `,` between fields, `"` around a field
/// that holds `,`, `"` or a line break, and `""` for a quote inside one. A line
/// ends at `\n` or `\r\n`; line numbers count every line of the file, the
/// header row's included.
///
/// The rule that confines a broken record, so it never takes good rows with it:
///
/// - A record is one line, unless a quoted field runs over line breaks. Blank
///   lines are not records.
/// - A quote opens a quoted field only at the start of a field; elsewhere it is
///   text (`5" pipe` is the text `5" pipe`).
/// - A record on one line that is broken (text after a closing quote, a quote
///   not closed on the last line of the file, the wrong number of fields, not
///   UTF-8, longer than 1 MiB) is that line only: an invalid row, skipped under
///   `--skip-invalid`, and the next record starts on the next line.
/// - A quoted field that runs over line breaks must close cleanly and make a
///   record of the header's number of fields. When it does not (its quote is not
///   closed by the end of the file, text follows its closing quote, or its record
///   has the wrong number of fields), a stray quote has most likely joined the
///   lines after it into one field: those lines may be good rows or parts of a
///   field, and nothing tells which. That is a [`ScanError::Quoting`], and the
///   import refuses the whole file before writing anything (it reads a CSV file
///   through once before it imports).
struct CsvScanner<R> {
    reader: R,
    /// Lines read so far.
    line: usize,
    /// Bytes read so far.
    bytes: u64,
    /// Fields per record (the header's), once the header is read.
    width: Option<usize>,
}

impl<R: BufRead> CsvScanner<R> {
    fn new(mut reader: R) -> Self {
        let mut bytes = 0;
        if let Ok(buf) = reader.fill_buf()
            && buf.starts_with(UTF8_BOM)
        {
            reader.consume(UTF8_BOM.len());
            bytes = UTF8_BOM.len() as u64;
        }
        CsvScanner {
            reader,
            line: 0,
            bytes,
            width: None,
        }
    }

    /// The next record, `None` at the end of the input.
    fn next(&mut self) -> Result<Option<CsvItem>, ScanError> {
        loop {
            let start = self.line + 1;
            let mut rec = Building::default();
            let mut state = Quote::FieldStart;
            let mut quote_line = start;
            // The line of the quote whose field first ran over a line break.
            let mut spanning_quote: Option<usize> = None;
            let mut problem: Option<String> = None;
            let mut seen = false;
            // The last line with something other than white space on it.
            let mut last_content_line = start;
            let at_eof = loop {
                let buf = match self.reader.fill_buf() {
                    Ok(buf) => buf,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(error) => {
                        return Err(ScanError::Io {
                            line: self.line + 1,
                            error,
                        });
                    }
                };
                if buf.is_empty() {
                    break true;
                }
                let mut used = 0;
                let mut ended = false;
                for &b in buf {
                    used += 1;
                    seen = true;
                    let here = self.line + 1;
                    if !b.is_ascii_whitespace() {
                        last_content_line = here;
                    }
                    let mut bad = false;
                    match state {
                        Quote::SkipLine => ended = b == b'\n',
                        Quote::FieldStart => match b {
                            b'"' => {
                                state = Quote::Quoted;
                                quote_line = here;
                            }
                            b',' => rec.end_field(),
                            b'\n' => ended = true,
                            _ => {
                                rec.push(b);
                                state = Quote::Unquoted;
                            }
                        },
                        Quote::Unquoted => match b {
                            b',' => {
                                rec.end_field();
                                state = Quote::FieldStart;
                            }
                            b'\n' => ended = true,
                            _ => rec.push(b),
                        },
                        Quote::Quoted => match b {
                            b'"' => state = Quote::MaybeClosed,
                            b'\n' => {
                                rec.push(b);
                                self.line += 1;
                                spanning_quote.get_or_insert(quote_line);
                            }
                            _ => rec.push(b),
                        },
                        Quote::MaybeClosed => match b {
                            b'"' => {
                                rec.push(b);
                                state = Quote::Quoted;
                            }
                            b',' => {
                                rec.end_field();
                                state = Quote::FieldStart;
                            }
                            b'\n' => ended = true,
                            b'\r' => state = Quote::ClosedCr,
                            _ => bad = true,
                        },
                        Quote::ClosedCr => {
                            if b == b'\n' {
                                ended = true;
                            } else {
                                bad = true;
                            }
                        }
                    }
                    if bad {
                        if let Some(opened) = spanning_quote {
                            return Err(ScanError::Quoting {
                                line: start,
                                message: format!(
                                    "the quoted field opened on line {opened} runs over line breaks and has text after its closing quote on line {here}, so which of the lines from {start} to {here} are records cannot be known"
                                ),
                            });
                        }
                        problem = Some(
                            "text follows the closing quote of a quoted field (a quote inside a quoted field is written twice: \"\")"
                                .into(),
                        );
                        state = Quote::SkipLine;
                    }
                    if ended {
                        break;
                    }
                }
                self.reader.consume(used);
                self.bytes += used as u64;
                if ended {
                    break false;
                }
            };
            if at_eof && !seen {
                return Ok(None);
            }
            if at_eof && state == Quote::Quoted {
                // Confined to its line when nothing but white space follows it.
                if last_content_line != start {
                    return Err(ScanError::Quoting {
                        line: quote_line,
                        message: format!(
                            "the quote opened on line {quote_line} is not closed by the end of the file, so which of the lines after it are records cannot be known"
                        ),
                    });
                }
                self.line = start;
                return Ok(Some(CsvItem::Invalid {
                    line: start,
                    message: "the quote opened on this line is not closed (the file ends)".into(),
                }));
            }
            // The line end (or the end of the file after a last line without one).
            self.line += 1;
            let end = self.line;
            if let Some(message) = problem {
                return Ok(Some(CsvItem::Invalid {
                    line: start,
                    message,
                }));
            }
            if matches!(state, Quote::FieldStart | Quote::Unquoted) {
                if rec.field.last() == Some(&b'\r') {
                    rec.field.pop();
                }
                if rec.count == 0 && rec.field.iter().all(|b| *b == b' ' || *b == b'\t') {
                    // A blank line.
                    continue;
                }
            }
            rec.end_field();
            if let Some(width) = self.width
                && rec.count != width
            {
                if let Some(opened) = spanning_quote {
                    return Err(ScanError::Quoting {
                        line: start,
                        message: format!(
                            "the quoted field opened on line {opened} runs to line {end} and makes a record of {} fields, not the header's {width}, so which of the lines from {start} to {end} are records cannot be known",
                            rec.count
                        ),
                    });
                }
                return Ok(Some(CsvItem::Invalid {
                    line: start,
                    message: format!(
                        "the row has {}, the header has {width}",
                        plural(rec.count, "field", "fields")
                    ),
                }));
            }
            if rec.size > MAX_LINE_BYTES {
                return Ok(Some(CsvItem::Invalid {
                    line: start,
                    message: format!(
                        "the row is longer than {} MiB",
                        MAX_LINE_BYTES / (1024 * 1024)
                    ),
                }));
            }
            let fields: Result<Vec<String>, _> =
                rec.fields.into_iter().map(String::from_utf8).collect();
            return Ok(Some(match fields {
                Ok(fields) => CsvItem::Record {
                    line: start,
                    fields,
                },
                Err(_) => CsvItem::Invalid {
                    line: start,
                    message: "the row is not UTF-8".into(),
                },
            }));
        }
    }

    /// Read the header row: the field names, each once.
    fn header(&mut self) -> anyhow::Result<Vec<String>> {
        let malformed = |line: usize, message: &str| -> anyhow::Error {
            Failure::error(format!(
                "line {line}: the CSV header row is malformed: {message}"
            ))
            .with_hint("the first line of a CSV import names the fields, one per column")
            .into()
        };
        let (line, header) = match self.next() {
            Ok(None) => (1, Vec::new()),
            Ok(Some(CsvItem::Record { line, fields })) => (line, fields),
            Ok(Some(CsvItem::Invalid { line, message })) => return Err(malformed(line, &message)),
            Err(ScanError::Quoting { line, message }) => return Err(malformed(line, &message)),
            Err(e) => return Err(Failure::error(e.to_string()).into()),
        };
        let mut seen = std::collections::HashSet::new();
        for name in &header {
            if name.contains(['\r', '\n']) {
                return Err(Failure::error(format!(
                    "line {line}: the CSV header row has a line break in the column name {name:?}"
                ))
                .with_hint("if the file's lines end with a bare carriage return (classic Mac OS), convert them to LF or CRLF")
                .into());
            }
            if !seen.insert(name.as_str()) {
                return Err(malformed(line, &format!("it names `{name}` twice")));
            }
        }
        self.width = Some(header.len());
        Ok(header)
    }
}

/// Where an import reads from.
enum Source {
    /// A regular file, or stdin redirected from one: its size is known, and it
    /// can be read twice (from `start`).
    File { file: File, start: u64, size: u64 },
    /// A pipe, a FIFO, a device: read once, as it comes.
    Stream(File),
}

fn open_source(path: &Path) -> anyhow::Result<Source> {
    let (file, name) = if path == Path::new("-") {
        use std::os::fd::AsFd;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot read standard input")?;
        (File::from(fd), "standard input".to_string())
    } else {
        let file = File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        (file, format!("`{}`", path.display()))
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {name}"))?;
    if meta.is_dir() {
        return Err(Failure::error(format!("{name} is a directory, not a file of records")).into());
    }
    if meta.is_file()
        && let Ok(start) = (&file).stream_position()
    {
        let size = meta.len().saturating_sub(start);
        return Ok(Source::File { file, start, size });
    }
    Ok(Source::Stream(file))
}

/// Copy a stream into an unnamed temporary file (removed when closed), so a CSV
/// import can read it through before it writes anything.
fn spool(mut stream: File, progress: &Progress) -> anyhow::Result<(File, u64)> {
    let mut copy =
        tempfile::tempfile().context("cannot create a temporary file to hold the input")?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the input"),
        };
        copy.write_all(&buf[..n])
            .context("cannot write the temporary copy of the input")?;
        total += n as u64;
        progress.update(total, || indicatif::HumanBytes(total).to_string());
    }
    copy.seek(SeekFrom::Start(0))
        .context("cannot read the temporary copy of the input")?;
    Ok((copy, total))
}

/// The rows of a CSV import, once a first pass over the whole input has found
/// nothing it cannot get past (a stream is copied to a temporary file first).
/// The size is the bytes to read.
fn csv_rows(source: Source, ctx: &Ctx) -> anyhow::Result<(Rows, u64)> {
    let (file, start, size) = match source {
        Source::File { file, start, size } => (file, start, size),
        Source::Stream(stream) => {
            let progress = Progress::new(ctx, None, "reading the input:");
            let (file, size) = spool(stream, &progress)?;
            (file, 0, size)
        }
    };
    {
        let progress = Progress::new(ctx, Some(size), "checking");
        let mut scanner = CsvScanner::new(BufReader::with_capacity(1 << 16, &file));
        scanner.header()?;
        let mut records = 0usize;
        loop {
            match scanner.next() {
                Ok(None) => break,
                Ok(Some(_)) => {
                    records += 1;
                    if records.is_multiple_of(1024) {
                        progress.update(scanner.bytes, || plural(records, "row", "rows"));
                    }
                }
                Err(ScanError::Quoting { line, message }) => {
                    return Err(Failure::error(format!(
                        "line {line}: {message}; the file was refused whole and nothing was imported"
                    ))
                    .with_hint("a quote inside a quoted field is written twice (\"\"); fix the quoting there and import again")
                    .into());
                }
                Err(e) => return Err(Failure::error(e.to_string()).into()),
            }
        }
    }
    (&file)
        .seek(SeekFrom::Start(start))
        .context("cannot read the input again")?;
    let reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, file));
    let mut scanner = CsvScanner::new(reader);
    let header = scanner.header()?;
    Ok((Rows::Csv { scanner, header }, size))
}

/// Progress on stderr, only when it is a terminal and without `-q`: a bar over
/// the bytes when the total is known, a spinner with counts otherwise. Cleared
/// when done or dropped (an error is then printed on a clean line).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(ctx: &Ctx, total: Option<u64>, prefix: &str) -> Progress {
        if !ctx.out.progress_allowed() {
            return Progress(None);
        }
        let (bar, template) = match total {
            Some(total) => (
                indicatif::ProgressBar::new(total),
                "{prefix} [{wide_bar}] {bytes}/{total_bytes} {msg} eta {eta}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {prefix} {msg} ({elapsed})",
            ),
        };
        Progress::styled(bar, template, prefix)
    }

    fn spinner(ctx: &Ctx, template: &str) -> Progress {
        if !ctx.out.progress_allowed() {
            return Progress(None);
        }
        Progress::styled(indicatif::ProgressBar::new_spinner(), template, "")
    }

    fn styled(bar: indicatif::ProgressBar, template: &str, prefix: &str) -> Progress {
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }

    fn update(&self, position: u64, message: impl FnOnce() -> String) {
        if let Some(bar) = &self.0 {
            bar.set_position(position);
            bar.set_message(message());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

pub fn import(args: ImportArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let model = required_model(&instance)?;
    let caller = Caller::operator_as(&instance, &model, &args.email, args.org.as_deref())?;
    let records = Records::new(&instance, &model);
    let access = records
        .object_access(&caller, &args.object)
        .map_err(api_failure)?;
    let object = access.object;
    let attempt = || -> anyhow::Result<ImportReport> {
        let csv_input = match args.format.as_deref() {
            Some("csv") => true,
            Some("jsonl") | Some("json") => false,
            Some(other) => {
                return Err(Failure::error(format!(
                    "`{other}` is not an import format; use `jsonl` or `csv`"
                ))
                .into());
            }
            None => args
                .file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")),
        };
        refuse_terminal_stdin(&args.file)?;
        let source = open_source(&args.file)?;
        let (mut rows, total) = if csv_input {
            let (rows, size) = csv_rows(source, ctx)?;
            (rows, Some(size))
        } else {
            let (file, total) = match source {
                Source::File { file, size, .. } => (file, Some(size)),
                Source::Stream(file) => (file, None),
            };
            let reader: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, file));
            (
                Rows::Jsonl {
                    reader,
                    line: 0,
                    bytes: 0,
                },
                total,
            )
        };
        let progress = Progress::new(ctx, total, "importing");
        let started = Instant::now();
        let mut read = 0usize;
        let mut imported = 0usize;
        let mut skipped: Vec<SkippedRow> = Vec::new();
        let mut batch: Vec<Map<String, Value>> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        let batch_size = args.batch.clamp(1, 50_000);
        // What the bar's bytes do not say; a spinner says how many rows were read too.
        let counts = |read: usize, imported: usize, skipped: usize| {
            move || {
                let mut text = if total.is_some() {
                    String::new()
                } else {
                    format!("{} read, ", plural(read, "row", "rows"))
                };
                text.push_str(&format!("{imported} imported"));
                if skipped > 0 {
                    text.push_str(&format!(", {skipped} skipped"));
                }
                text
            }
        };
        progress.update(0, counts(0, 0, 0));
        let mut finished = false;
        while !finished {
            batch.clear();
            lines.clear();
            while batch.len() < batch_size {
                let row = rows.next(object).map_err(|e| {
                    Failure::error(format!("{e}; the import stopped there, {imported} records were imported before it and nothing of this batch was written"))
                })?;
                match row {
                    None => {
                        finished = true;
                        break;
                    }
                    Some(Row::Fields(line, map)) => {
                        read += 1;
                        batch.push(map);
                        lines.push(line);
                    }
                    Some(Row::Invalid(line, message)) => {
                        read += 1;
                        if args.skip_invalid {
                            skipped.push(SkippedRow {
                                line,
                                code: "invalid_row".into(),
                                message,
                            });
                            continue;
                        }
                        // Report the first invalid row in file order: an earlier row of
                        // this batch may be invalid too.
                        if let Err((i, e)) = records.check_batch(&caller, &args.object, &batch) {
                            let line = lines.get(i).copied().unwrap_or(0);
                            return Err(Failure::new(e.exit(), format!("line {line}: {} ({}); the import stopped there, {imported} records were imported before it and nothing of this batch was written", e.message, e.code)).into());
                        }
                        return Err(Failure::error(format!("line {line}: {message}; the import stopped there, {imported} records were imported before it and nothing of this batch was written")).into());
                    }
                }
                if read.is_multiple_of(256) {
                    progress.update(rows.bytes(), counts(read, imported, skipped.len()));
                }
            }
            if batch.is_empty() {
                break;
            }
            match records.create_batch(&caller, &args.object, &batch, args.skip_invalid) {
                Ok(outcome) => {
                    imported += outcome.created.len();
                    for (i, e) in outcome.skipped {
                        skipped.push(SkippedRow {
                            line: lines[i],
                            code: e.code.to_string(),
                            message: e.message,
                        });
                    }
                }
                Err((i, e)) => {
                    let line = lines.get(i).copied().unwrap_or(0);
                    return Err(Failure::new(e.exit(), format!("line {line}: {} ({}); the import stopped there, {imported} records were imported before it and nothing of this batch was written", e.message, e.code)).into());
                }
            }
            progress.update(rows.bytes(), counts(read, imported, skipped.len()));
        }
        drop(progress);
        // Rows skipped in a batch are reported in file order.
        skipped.sort_by_key(|s| s.line);
        let seconds = started.elapsed().as_secs_f64();
        instance.store.write(|tx| {
            audit::append(tx, &caller.origin, Event::new("import").object(&args.object).changes(json!({"read": read, "imported": imported, "skipped": skipped.len(), "file": args.file.display().to_string()})))?;
            Ok(())
        })?;
        Ok(ImportReport {
            object: args.object.clone(),
            user: caller.principal.email.clone(),
            read,
            imported,
            skipped,
            seconds,
            rows_per_second: imported as f64 / seconds.max(1e-9),
        })
    };
    let report = instance.audited(&caller.origin, "import", Some(&args.object), attempt)?;
    if ctx.out.json {
        ctx.out.json_doc("import", &report)?;
    } else {
        // Each skipped row is a warning (shown even with `-q`); the summary is
        // a status line.
        for s in &report.skipped {
            ctx.out.warn(format!(
                "line {}: skipped: {} ({})",
                s.line, s.message, s.code
            ));
        }
        ctx.out.status(format!(
            "read {}: imported {} as {}, skipped {} ({:.2} s, {:.0} rows/s)",
            plural(report.read, "row", "rows"),
            plural(
                report.imported,
                &format!("`{}` record", report.object),
                &format!("`{}` records", report.object)
            ),
            report.user,
            report.skipped.len(),
            report.seconds,
            report.rows_per_second,
        ));
    }
    Ok(Exit::Success)
}

/// How an export went: the records written, and whether the reader of stdout
/// closed it before the end (`objectos export … | head`).
struct Exported {
    count: usize,
    closed: bool,
}

pub fn export(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let model = required_model(&instance)?;
    let caller = Caller::operator_as(&instance, &model, &args.email, args.org.as_deref())?;
    let records = Records::new(&instance, &model);
    // `-o -` is stdout.
    let output: Option<&Path> = args.output.as_deref().filter(|p| *p != Path::new("-"));
    let output_name = output.map(|p| p.display().to_string());
    let write_error = |e: std::io::Error| -> anyhow::Error {
        let target = match output {
            Some(path) => format!("`{}`", path.display()),
            None => "standard output".to_string(),
        };
        anyhow::Error::new(e).context(format!("cannot write the export to {target}"))
    };
    let attempt = || -> anyhow::Result<Exported> {
        let access: ObjectAccess<'_> = records
            .object_access(&caller, &args.object)
            .map_err(api_failure)?;
        if !access.can_export() {
            return Err(Failure::denied(format!(
                "`{}` may not export `{}` (the permission sets grant no `allowExport`)",
                caller.principal.email, args.object
            ))
            .into());
        }
        let mut out: Box<dyn Write> = match output {
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
                Box::new(std::io::BufWriter::new(file))
            }
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        // A spinner, unless the records themselves go to the terminal.
        let progress = if output.is_some() || !std::io::stdout().is_terminal() {
            Progress::spinner(
                ctx,
                "{spinner} {pos} records exported ({per_sec}, {elapsed})",
            )
        } else {
            Progress(None)
        };
        let mut last: Option<String> = None;
        let mut count = 0usize;
        let mut closed = false;
        'pages: loop {
            let filter = match &last {
                Some(id) => Filter::Cmp {
                    field: "id".into(),
                    op: Op::Gt(json!(id)),
                },
                None => Filter::All,
            };
            let spec = QuerySpec {
                filter,
                sort: vec![("id".into(), false)],
                limit: 1000,
                ..QuerySpec::all(&args.object)
            };
            let page = records.list(&caller, &spec).map_err(api_failure)?;
            if page.records.is_empty() {
                break;
            }
            let mut line = Vec::new();
            for record in &page.records {
                line.clear();
                serde_json::to_writer(&mut line, record)?;
                line.push(b'\n');
                if let Err(e) = out.write_all(&line) {
                    // The reader of stdout has all it wants: a normal end.
                    if output.is_none() && e.kind() == ErrorKind::BrokenPipe {
                        closed = true;
                        break 'pages;
                    }
                    return Err(write_error(e));
                }
                count += 1;
            }
            progress.update(count as u64, String::new);
            last = page
                .records
                .last()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if !closed && let Err(e) = out.flush() {
            if output.is_none() && e.kind() == ErrorKind::BrokenPipe {
                closed = true;
            } else {
                return Err(write_error(e));
            }
        }
        drop(progress);
        let mut changes = json!({"exported": count, "output": output_name});
        if closed {
            changes["stdout_closed"] = json!(true);
        }
        instance.store.write(|tx| {
            audit::append(
                tx,
                &caller.origin,
                Event::new("export").object(&args.object).changes(changes),
            )?;
            Ok(())
        })?;
        Ok(Exported { count, closed })
    };
    let exported = instance.audited(&caller.origin, "export", Some(&args.object), attempt)?;
    if exported.closed {
        // Like `yes | head`: nothing to say.
        return Ok(Exit::Success);
    }
    let count = exported.count;
    let report = ExportReport {
        object: args.object.clone(),
        user: caller.principal.email.clone(),
        exported: count,
        output: output_name.clone(),
    };
    if ctx.out.json && output.is_some() {
        ctx.out.json_doc("export", &report)?;
    } else {
        ctx.out.status(format!(
            "exported {count} `{}` records readable by {}",
            report.object, report.user
        ));
    }
    Ok(Exit::Success)
}

pub use crate::records::transfer::{TransferReport, TransferredObject};

pub fn transfer(args: TransferArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let model = required_model(&instance)?;
    let report = crate::records::transfer::transfer(
        &instance,
        &model,
        &Origin::operator(),
        &args.from,
        &args.to,
        args.object.as_deref(),
    )?;
    if ctx.out.json {
        ctx.out.json_doc("transfer", &report)?;
    } else {
        for o in &report.objects {
            if o.records > 0 {
                ctx.out
                    .data(format!("{}: {} records", o.object, o.records))?;
            }
        }
        ctx.out.status(format!(
            "moved {} records from {} to {}",
            report.total, report.from, report.to
        ));
    }
    Ok(Exit::Success)
}

/// Reading from stdin when it is a terminal would hang; say so instead.
pub fn refuse_terminal_stdin(file: &Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if file == Path::new("-") && std::io::stdin().is_terminal() {
        return Err(Failure::error(
            "`-` reads the records from standard input, which is a terminal",
        )
        .with_hint("pipe a file in, or name the file")
        .into());
    }
    Ok(())
}

pub fn backup(args: crate::cli::BackupArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let output = OutputPath::new(&args.output);
    output.check(ctx.out.json, true)?;
    if let OutputPath::File(path) = &output
        && path.exists()
        && !args.force
    {
        return Err(
            Failure::error(format!("`{}` exists; nothing was written", path.display()))
                .with_hint("choose another file, or pass `--force` to replace it")
                .into(),
        );
    }
    let instance = ctx.instance()?;
    let report =
        crate::instance::backup::backup(&instance, &Origin::operator(), &output, &args.encrypt_to)?;
    if ctx.out.json {
        ctx.out.json_doc("backup", &report)?;
    } else {
        // With `-o -` the backup itself is the data on stdout.
        if !output.is_stdout() {
            ctx.out.data(&report.file)?;
        }
        ctx.out.status(format!(
            "backed up to {} ({} bytes, {}); audit head seq {}",
            output.describe(),
            report.bytes,
            if report.encrypted {
                "encrypted, with the instance keys"
            } else {
                "not encrypted, without the instance keys"
            },
            report.audit_head_seq.unwrap_or(0)
        ));
    }
    Ok(Exit::Success)
}

pub fn restore(args: crate::cli::RestoreArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let mut inputs = vec![("FILE", args.file.as_path())];
    inputs.extend(args.identities.iter().map(|p| ("-i", p.as_path())));
    if let Some(path) = &args.signer {
        inputs.push(("--signer", path.as_path()));
    }
    at_most_one_stdin(inputs)?;
    let server = args
        .database_url
        .as_ref()
        .map(|url| crate::instance::NewServer {
            url: url.clone(),
            password_file: args
                .database_password_file
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            admin_url: args.database_admin_url.clone(),
            admin_password_file: args
                .database_admin_password_file
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        });
    let report = crate::instance::backup::restore(
        &Input::new(&args.file),
        &ctx.data_dir,
        &args.identities,
        &crate::instance::backup::RestoreKeys {
            signer: args.signer.as_deref(),
            keys_from: args.keys_from.as_deref(),
        },
        server.as_ref(),
    )?;
    if ctx.out.json {
        ctx.out.json_doc("restore", &report)?;
    } else {
        ctx.out.status(format!(
            "restored instance {} as it was at {} into `{}`: {} audit rows verify against {} checkpoints",
            report.instance_id,
            report.backup_created_at.as_deref().unwrap_or("an unknown time"),
            report.data_dir,
            report.audit_rows,
            report.checkpoints
        ));
    }
    Ok(Exit::Success)
}

/// Read every row of an import from `bytes` as `import` reads a file (CSV
/// first checked whole, as `import` does), for the fuzz target: any input
/// ends in rows, invalid rows or an error, never a panic. The number of rows
/// read is returned.
#[doc(hidden)]
pub fn read_rows_for_fuzzing(
    bytes: &[u8],
    csv: bool,
    object: &crate::model::ObjectDef,
) -> Result<usize, String> {
    let mut rows = if csv {
        let mut scanner = CsvScanner::new(std::io::Cursor::new(bytes));
        scanner.header().map_err(|e| e.to_string())?;
        while scanner.next().map_err(|e| e.to_string())?.is_some() {}
        let reader: Box<dyn BufRead> = Box::new(std::io::Cursor::new(bytes.to_vec()));
        let mut scanner = CsvScanner::new(reader);
        let header = scanner.header().map_err(|e| e.to_string())?;
        Rows::Csv { scanner, header }
    } else {
        Rows::Jsonl {
            reader: Box::new(std::io::Cursor::new(bytes.to_vec())),
            line: 0,
            bytes: 0,
        }
    };
    let mut n = 0;
    while rows.next(object)?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item of a CSV text after its header, or the scan error.
    fn scan(text: &str) -> Result<Vec<CsvItem>, String> {
        let mut scanner = CsvScanner::new(text.as_bytes());
        scanner.header().map_err(|e| e.to_string())?;
        let mut items = Vec::new();
        loop {
            match scanner.next() {
                Ok(None) => return Ok(items),
                Ok(Some(item)) => items.push(item),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn record(line: usize, fields: &[&str]) -> CsvItem {
        CsvItem::Record {
            line,
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn lines_of(items: &[CsvItem]) -> Vec<(usize, bool)> {
        items
            .iter()
            .map(|i| match i {
                CsvItem::Record { line, .. } => (*line, true),
                CsvItem::Invalid { line, .. } => (*line, false),
            })
            .collect()
    }

    #[test]
    fn records_fields_and_line_numbers_with_lf_and_crlf() {
        for end in ["\n", "\r\n"] {
            let text = [
                "a,b",
                "1,2",
                "",
                "\"x, y\",\"say \"\"hi\"\"\"",
                "5\" pipe,",
                "last,one",
            ]
            .join(end);
            assert_eq!(
                scan(&text).unwrap(),
                vec![
                    record(2, &["1", "2"]),
                    record(4, &["x, y", "say \"hi\""]),
                    record(5, &["5\" pipe", ""]),
                    record(6, &["last", "one"]),
                ],
                "{end:?}"
            );
        }
    }

    #[test]
    fn a_quoted_field_may_span_lines_and_keeps_its_line_ends() {
        let items = scan("a,b\r\n\"one\r\ntwo\",x\r\nnext,y\r\n").unwrap();
        assert_eq!(
            items,
            vec![record(2, &["one\r\ntwo", "x"]), record(4, &["next", "y"])]
        );
    }

    #[test]
    fn a_broken_line_is_that_line_only() {
        let items = scan("a,b\n1,2\n\"bad\" quote,2\n3,4\n1,2,3\n5,6\n\"unclosed,7").unwrap();
        assert_eq!(
            lines_of(&items),
            vec![
                (2, true),
                (3, false),
                (4, true),
                (5, false),
                (6, true),
                (7, false)
            ]
        );
        // The quote of the last line runs into white space only.
        let items = scan("a,b\n1,2\n\"unclosed,7\n\n  \n").unwrap();
        assert_eq!(lines_of(&items), vec![(2, true), (3, false)]);
    }

    #[test]
    fn a_quote_problem_across_lines_cannot_be_resynchronised() {
        // Never closed: the lines after it may be rows or parts of a field.
        let e = scan("a,b\n1,2\n\"open,3\n4,5\n6,7\n").unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("not closed"), "{e}");
        // Closed by a later line's quote, with text after it.
        let e = scan("a,b\n1,2\n\"open,3\n4,5\n\"6\",7\n").unwrap_err();
        assert!(
            e.starts_with("line 3:") && e.contains("closing quote"),
            "{e}"
        );
        // Closed cleanly, but the record it makes has the wrong width.
        let e = scan("a,b\n1,2\n\"open,3\n4,5\n6\",7,8\n").unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("3 fields"), "{e}");
    }

    #[test]
    fn the_header_is_checked() {
        assert!(scan("\u{feff}a,b\n1,2\n").is_ok());
        assert!(scan("a,a\n1,2\n").unwrap_err().contains("twice"));
        assert!(scan("a,b\r1,2\r").unwrap_err().contains("line break"));
        assert_eq!(scan("").unwrap(), vec![]);
    }
}
