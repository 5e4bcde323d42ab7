//! `objectos import`, `export` and `transfer`: bulk data through the same
//! enforcement path and audit as the API, acting as a named user.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

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
use crate::query::request::QuerySpec;
use crate::records::{Caller, Records, convert};

/// The longest line (one record) an import reads.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Serialize, JsonSchema)]
pub struct ImportReport {
    pub object: String,
    pub user: String,
    pub imported: usize,
    pub skipped: Vec<SkippedRow>,
    pub seconds: f64,
    pub rows_per_second: f64,
}

#[derive(Serialize, JsonSchema)]
pub struct SkippedRow {
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

/// One row (its line number and fields), or why that line is not a row.
type RowResult = Result<(usize, Map<String, Value>), (usize, String)>;

/// Rows of an import: JSON lines, or CSV with a header row.
enum Rows<R: BufRead> {
    Jsonl {
        reader: R,
        line: usize,
    },
    Csv {
        reader: csv::Reader<R>,
        header: Vec<String>,
    },
}

fn read_bounded_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    let mut total = 0;
    loop {
        let available = reader.fill_buf()?;
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

impl<R: BufRead> Rows<R> {
    /// The next row as (line number, fields), or a parse error naming the line.
    fn next(&mut self, object: &crate::model::ObjectDef) -> Option<RowResult> {
        match self {
            Rows::Jsonl { reader, line } => {
                let mut buf = Vec::new();
                loop {
                    *line += 1;
                    let n = match read_bounded_line(reader, &mut buf) {
                        Ok(0) => return None,
                        Ok(n) => n,
                        Err(e) => return Some(Err((*line, format!("cannot read: {e}")))),
                    };
                    if n > MAX_LINE_BYTES {
                        return Some(Err((
                            *line,
                            format!(
                                "the line is longer than {} MiB",
                                MAX_LINE_BYTES / (1024 * 1024)
                            ),
                        )));
                    }
                    let text = match std::str::from_utf8(&buf) {
                        Ok(t) => t.trim(),
                        Err(_) => return Some(Err((*line, "the line is not UTF-8".into()))),
                    };
                    if text.is_empty() {
                        continue;
                    }
                    return Some(match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(map)) => Ok((*line, map)),
                        Ok(_) => Err((*line, "each line is a JSON object of field values".into())),
                        Err(e) => Err((*line, format!("not JSON: {e}"))),
                    });
                }
            }
            Rows::Csv { reader, header } => {
                let mut record = csv::StringRecord::new();
                match reader.read_record(&mut record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                        if record.as_slice().len() > MAX_LINE_BYTES {
                            return Some(Err((line, "the row is longer than 1 MiB".into())));
                        }
                        let mut map = Map::new();
                        for (name, cell) in header.iter().zip(record.iter()) {
                            let value = match object.field(name) {
                                Some(field) => match convert::from_text(field, cell) {
                                    Ok(Some(v)) => v,
                                    Ok(None) => continue,
                                    Err(why) => {
                                        return Some(Err((line, format!("`{name}` {why}"))));
                                    }
                                },
                                // Unknown columns go through as text; the records
                                // service refuses them by name.
                                None if cell.is_empty() => continue,
                                None => Value::String(cell.to_string()),
                            };
                            map.insert(name.clone(), value);
                        }
                        Some(Ok((line, map)))
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                        Some(Err((line, format!("malformed CSV: {e}"))))
                    }
                }
            }
        }
    }
}

fn open_input(file: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if file == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            std::io::stdin(),
        )));
    }
    let f =
        std::fs::File::open(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
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
        let input = open_input(&args.file)?;
        let mut rows: Rows<Box<dyn BufRead>> = if csv_input {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .from_reader(input);
            let header = reader
                .headers()
                .map_err(|e| Failure::error(format!("the CSV header row is malformed: {e}")))?
                .iter()
                .map(str::to_string)
                .collect();
            Rows::Csv { reader, header }
        } else {
            Rows::Jsonl {
                reader: input,
                line: 0,
            }
        };
        let bar = if ctx.out.progress_allowed() {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {pos} rows imported ({per_sec}, {elapsed})",
            ) {
                bar.set_style(style);
            }
            Some(bar)
        } else {
            None
        };
        let started = Instant::now();
        let mut imported = 0usize;
        let mut skipped: Vec<SkippedRow> = Vec::new();
        let mut batch: Vec<Map<String, Value>> = Vec::new();
        let mut lines: Vec<usize> = Vec::new();
        let batch_size = args.batch.clamp(1, 50_000);
        let mut finished = false;
        while !finished {
            batch.clear();
            lines.clear();
            while batch.len() < batch_size {
                match rows.next(object) {
                    None => {
                        finished = true;
                        break;
                    }
                    Some(Ok((line, map))) => {
                        batch.push(map);
                        lines.push(line);
                    }
                    Some(Err((line, message))) => {
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
            if let Some(bar) = &bar {
                bar.set_position(imported as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let seconds = started.elapsed().as_secs_f64();
        instance.store.write(|tx| {
            audit::append(tx, &caller.origin, Event::new("import").object(&args.object).changes(json!({"imported": imported, "skipped": skipped.len(), "file": args.file.display().to_string()})))?;
            Ok(())
        })?;
        Ok(ImportReport {
            object: args.object.clone(),
            user: caller.principal.email.clone(),
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
        for s in &report.skipped {
            ctx.out.warn(format!(
                "line {}: skipped: {} ({})",
                s.line, s.message, s.code
            ));
        }
        ctx.out.data(format!(
            "imported {} `{}` records as {} in {:.2} s ({:.0} rows/s); {} skipped",
            report.imported,
            report.object,
            report.user,
            report.seconds,
            report.rows_per_second,
            report.skipped.len()
        ))?;
    }
    Ok(Exit::Success)
}

pub fn export(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let instance = ctx.instance()?;
    let model = required_model(&instance)?;
    let caller = Caller::operator_as(&instance, &model, &args.email, args.org.as_deref())?;
    let records = Records::new(&instance, &model);
    let attempt = || -> anyhow::Result<usize> {
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
        let mut out: Box<dyn Write> = match &args.output {
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
        let mut last: Option<String> = None;
        let mut count = 0usize;
        loop {
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
            for record in &page.records {
                serde_json::to_writer(&mut out, record)?;
                out.write_all(b"\n")?;
            }
            count += page.records.len();
            last = page
                .records
                .last()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        out.flush()?;
        instance.store.write(|tx| {
            audit::append(tx, &caller.origin, Event::new("export").object(&args.object).changes(json!({"exported": count, "output": args.output.as_ref().map(|p| p.display().to_string())})))?;
            Ok(())
        })?;
        Ok(count)
    };
    let count = instance.audited(&caller.origin, "export", Some(&args.object), attempt)?;
    let report = ExportReport {
        object: args.object.clone(),
        user: caller.principal.email.clone(),
        exported: count,
        output: args.output.as_ref().map(|p| p.display().to_string()),
    };
    if ctx.out.json && args.output.is_some() {
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
    if args.output.exists() && !args.force {
        return Err(Failure::error(format!(
            "`{}` exists; nothing was written",
            args.output.display()
        ))
        .with_hint("choose another file, or pass `--force` to replace it")
        .into());
    }
    let instance = ctx.instance()?;
    let report = crate::instance::backup::backup(
        &instance,
        &Origin::operator(),
        &args.output,
        &args.encrypt_to,
    )?;
    if ctx.out.json {
        ctx.out.json_doc("backup", &report)?;
    } else {
        ctx.out.data(&report.file)?;
        ctx.out.status(format!(
            "backed up to `{}` ({} bytes, {}); audit head seq {}",
            report.file,
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
    let report = crate::instance::backup::restore(
        &args.file,
        &ctx.data_dir,
        &args.identities,
        &crate::instance::backup::RestoreKeys {
            signer: args.signer.as_deref(),
            keys_from: args.keys_from.as_deref(),
        },
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
