//! `objectos instance rotate-keys`.

use crate::audit::Origin;
use crate::cli::InstanceCommand;
use crate::commands::Ctx;
use crate::error::{Exit, Failure};
use crate::instance::ServeLock;
use crate::instance::rotate;

pub fn run(cmd: InstanceCommand, ctx: &Ctx) -> anyhow::Result<Exit> {
    match cmd {
        InstanceCommand::RotateKeys => {
            if ServeLock::held(&ctx.data_dir) {
                return Err(Failure::error(format!(
                    "a server is serving `{}`; it would keep signing with the old key",
                    ctx.data_dir.display()
                ))
                .with_hint("stop the server, rotate, then start it again")
                .into());
            }
            let report = {
                let instance = ctx.instance()?;
                rotate::rotate_keys(&instance, &Origin::operator())?
            };
            if ctx.out.json {
                ctx.out.json_doc("instance.rotate-keys", &report)?;
            } else {
                ctx.out.data(&report.new_signing_key_id)?;
                ctx.out.status(format!(
                    "rotated the instance keys: signing key {} → {}, recipient {} → {}; {} secret setting(s) re-encrypted; the old public keys are kept under `retired/`",
                    report.old_signing_key_id,
                    report.new_signing_key_id,
                    report.old_recipient,
                    report.new_recipient,
                    report.settings_reencrypted
                ));
            }
            Ok(Exit::Success)
        }
    }
}
