//! `objectos build`: sources → one reproducible, canonical `objectstack.json`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::artifact;
use crate::cli::BuildArgs;
use crate::commands::Ctx;
use crate::commands::validate::{print_issues, read_document};
use crate::crypto::signing;
use crate::error::{Exit, Failure};
use crate::output::stdio::{Input, OutputPath, is_dash};

#[derive(Serialize, JsonSchema)]
pub struct BuildReport {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub id: String,
    pub version: String,
    pub counts: Counts,
    pub warnings: Vec<artifact::validate::Issue>,
}

#[derive(Serialize, JsonSchema)]
pub struct Counts {
    pub fragments: usize,
    pub objects: usize,
    pub fields: usize,
    pub permission_sets: usize,
    pub sharing_rules: usize,
    pub actions: usize,
}

pub fn run(args: BuildArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let output = OutputPath::new(&args.output);
    output.check(ctx.out.json, false)?;
    let (source, checked) = if is_dash(&args.source) {
        let input = Input::new(&args.source);
        let source = artifact::build::Source::from_bytes(&read_document(&input)?, input.label())?;
        artifact::check_document(source, false)
    } else {
        artifact::check_source(&args.source, false, Some(&args.output))?
    };
    if !checked.report.errors.is_empty() {
        print_issues(ctx, &checked.report);
        return Err(Failure::verify(format!(
            "{} is not valid ({} error(s)); nothing was written",
            Input::new(&args.source).describe(),
            checked.report.errors.len()
        ))
        .into());
    }
    let bytes = artifact::artifact_bytes(&source.document)?;
    if let OutputPath::File(path) = &output
        && let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            anyhow::Error::new(e).context(format!("cannot create `{}`", parent.display()))
        })?;
    }
    output.write(&bytes, Some(0o644), false)?;
    let sha256 = signing::sha256_hex(&bytes);
    let warnings = checked.report.warnings.clone();
    let fragments = checked.files.len();
    let model = checked.into_model()?;
    let report = BuildReport {
        path: args.output.clone(),
        sha256: sha256.clone(),
        bytes: bytes.len() as u64,
        id: model.manifest.id.clone(),
        version: model.manifest.version.to_string(),
        counts: Counts {
            fragments,
            objects: model.objects.len(),
            fields: model.objects.iter().map(|o| o.fields.len()).sum(),
            permission_sets: model.permission_sets.len(),
            sharing_rules: model.sharing_rules.len(),
            actions: model.actions.len(),
        },
        warnings,
    };
    if ctx.out.json {
        ctx.out.json_doc("build", &report)?;
    } else {
        for w in &report.warnings {
            ctx.out.warn(format!("{}: {}", w.pointer, w.message));
        }
        // With `-o -` the artifact itself is the data on stdout.
        let line = format!("{sha256}  {}", args.output.display());
        if output.is_stdout() {
            ctx.out.status(line);
        } else {
            ctx.out.data(line)?;
        }
        ctx.out.status(format!(
            "built {} {} from {} file(s): {} objects, {} permission sets, {} sharing rules, {} actions",
            report.id,
            report.version,
            report.counts.fragments,
            report.counts.objects,
            report.counts.permission_sets,
            report.counts.sharing_rules,
            report.counts.actions
        ));
    }
    Ok(Exit::Success)
}
