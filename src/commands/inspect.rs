//! `objectos inspect`: manifest, objects, access matrix, and what is carried unenforced.

use crate::artifact::inspect;
use crate::cli::InspectArgs;
use crate::commands::Ctx;
use crate::commands::validate::check_input;
use crate::error::Exit;

pub fn run(args: InspectArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let checked = check_input(&args.artifact, false)?;
    let report = checked.report.clone();
    let model = checked.into_model()?;
    let inspection = inspect::inspect(&model, &report);
    if ctx.out.json {
        ctx.out.json_doc("inspect", &inspection)?;
    } else {
        let text = inspect::render(&inspection);
        use std::io::Write;
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(Exit::Success)
}
