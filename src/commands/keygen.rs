//! `objectos keygen`: a minisign-compatible key pair for signing artifacts.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::cli::KeygenArgs;
use crate::commands::Ctx;
use crate::crypto::signing::{self, write_atomic};
use crate::error::{Exit, Failure};
use crate::output::stdio::is_dash;
use crate::prompt;

#[derive(Serialize, JsonSchema)]
pub struct KeygenReport {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    /// minisign key id (16 hex digits)
    pub key_id: String,
    pub encrypted: bool,
}

pub fn run(args: KeygenArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    if is_dash(&args.output) {
        return Err(Failure::new(
            Exit::Usage,
            "a key pair is two files (`KEY` and `KEY.pub`); `-o -` cannot name them",
        )
        .with_hint("pass `-o KEY` with a path; the public key goes to `KEY.pub`")
        .into());
    }
    let pub_path = public_key_path(&args.output);
    if !args.force {
        for path in [&args.output, &pub_path] {
            if path.exists() {
                return Err(
                    Failure::error(format!("`{}` already exists", path.display()))
                        .with_hint("choose another path, or pass `--force` to replace the key pair")
                        .into(),
                );
            }
        }
    }
    let password = if args.unencrypted {
        None
    } else {
        let password = prompt::password_or_file(
            args.password_file.as_deref(),
            "Password for the new secret key",
            true,
            "--password-file FILE` or `--unencrypted",
        )?;
        if password.chars().count() < 8 {
            return Err(Failure::error("the password is shorter than 8 characters")
                .with_hint("choose a longer password, or `--unencrypted` for a throwaway key")
                .into());
        }
        Some(password)
    };
    let encrypted = password.is_some();
    if encrypted {
        ctx.out
            .status("deriving a key from the password (this takes a moment)");
    }
    let (sk_text, public) = signing::generate_keypair(password)?;
    write_atomic(&args.output, sk_text.as_bytes(), Some(0o600), !args.force)?;
    write_atomic(
        &pub_path,
        public.to_file_text().as_bytes(),
        Some(0o644),
        !args.force,
    )?;
    let report = KeygenReport {
        secret_key: args.output.clone(),
        public_key: pub_path.clone(),
        key_id: public.id.to_string(),
        encrypted,
    };
    if ctx.out.json {
        ctx.out.json_doc("keygen", &report)?;
    } else {
        ctx.out.data(format!("key id {}", public.id))?;
        ctx.out.status(format!(
            "wrote secret key `{}` ({}, mode 0600) and public key `{}`",
            args.output.display(),
            if encrypted {
                "encrypted"
            } else {
                "unencrypted"
            },
            pub_path.display()
        ));
    }
    Ok(Exit::Success)
}

/// `KEY` → `KEY.pub`
pub fn public_key_path(secret: &std::path::Path) -> PathBuf {
    let mut name = secret.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}
