//! `objectos quickstart`: from nothing to a serving, governed runtime in one command,
//! on the embedded SQLite default, with the sample CRM app.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Map, Value, json};

use crate::audit::Origin;
use crate::cli::{ApplyArgs, LogFormat, QuickstartArgs, ServeArgs};
use crate::commands::{Ctx, apply, serve};
use crate::crypto::signing::{self, write_atomic};
use crate::error::{Exit, Failure};
use crate::identity::{self, NewKey, NewUser};
use crate::instance::Instance;
use crate::model::filter::{Filter, Op as FilterOp};
use crate::output::Output;
use crate::query::request::QuerySpec;
use crate::records::{Caller, Records, Share};
use crate::timefmt;

/// The sample app, built into the binary so quickstart works from anywhere.
const CRM: &[(&str, &str)] = &[
    (
        "00-manifest.json",
        include_str!("../../fixtures/crm/00-manifest.json"),
    ),
    (
        "10-accounts.json",
        include_str!("../../fixtures/crm/10-accounts.json"),
    ),
    (
        "11-contacts.json",
        include_str!("../../fixtures/crm/11-contacts.json"),
    ),
    (
        "12-opportunities.json",
        include_str!("../../fixtures/crm/12-opportunities.json"),
    ),
    (
        "13-catalogue.json",
        include_str!("../../fixtures/crm/13-catalogue.json"),
    ),
    (
        "20-permissions.json",
        include_str!("../../fixtures/crm/20-permissions.json"),
    ),
    (
        "30-sharing.json",
        include_str!("../../fixtures/crm/30-sharing.json"),
    ),
    (
        "40-actions.json",
        include_str!("../../fixtures/crm/40-actions.json"),
    ),
    (
        "50-policy.json",
        include_str!("../../fixtures/crm/50-policy.json"),
    ),
];

const ADMIN: &str = "admin@example.com";
const REP: &str = "rep@example.com";
const MANAGER: &str = "manager@example.com";
const KEY_NAME: &str = "quickstart";

fn step(ctx: &Ctx, line: impl AsRef<str>) {
    ctx.out.status(format!("quickstart: {}", line.as_ref()));
}

pub fn run(args: QuickstartArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    // Fail before changing anything: on a bad address, an address already in
    // use, or a data dir a server is serving (its demo keys would be revoked).
    let addr = serve::listen_addr(&args.listen, args.public)?;
    if crate::instance::ServeLock::held(&ctx.data_dir) {
        return Err(Failure::error(format!(
            "a server is serving `{}`; nothing was changed",
            ctx.data_dir.display()
        ))
        .with_hint(
            "stop it first (its demo keys stay valid while it runs), or pass another `--data-dir`",
        )
        .into());
    }
    if let Err(e) = std::net::TcpListener::bind(addr) {
        return Err(Failure::error(format!(
            "cannot listen on {addr}: {e}; nothing was changed"
        ))
        .with_hint("another server (perhaps another quickstart) listens there: stop it, or pass `--listen 127.0.0.1:PORT`")
        .into());
    }
    let quiet = Ctx {
        out: Output {
            json: false,
            quiet: true,
            verbose: false,
            color: false,
        },
        data_dir: ctx.data_dir.clone(),
    };
    let dir = &ctx.data_dir;

    let init = Instance::init(dir)?;
    step(
        ctx,
        if init.created {
            format!("initialized the data dir `{}`", dir.display())
        } else {
            format!("reusing the data dir `{}`", dir.display())
        },
    );
    let work = dir.join("quickstart");
    std::fs::create_dir_all(work.join("src")).context("cannot create the quickstart directory")?;

    // A development signing key inside the data dir.
    let key = work.join("dev-signing.key");
    if !key.exists() {
        let (sk, public) = signing::generate_keypair(None)?;
        write_atomic(&key, sk.as_bytes(), Some(0o600), true)?;
        write_atomic(
            &work.join("dev-signing.key.pub"),
            public.to_file_text().as_bytes(),
            Some(0o644),
            true,
        )?;
        step(
            ctx,
            format!(
                "created a development signing key {} (unencrypted, for this demo only)",
                public.id
            ),
        );
    }
    for (name, text) in CRM {
        std::fs::write(work.join("src").join(name), text)?;
    }
    let (source, checked) = crate::artifact::check_source(&work.join("src"), false, None)?;
    let bytes = crate::artifact::artifact_bytes(&source.document)?;
    let artifact = work.join("objectstack.json");
    write_atomic(&artifact, &bytes, Some(0o644), false)?;
    let model = checked.into_model()?;
    step(
        ctx,
        format!(
            "built {} {} (sha256 {})",
            model.manifest.id,
            model.manifest.version,
            signing::sha256_hex(&bytes)
        ),
    );
    let secret = crate::crypto::signing::SecretKey::load(&std::fs::read_to_string(&key)?, None)?;
    let claims = signing::Claims {
        timestamp: Some(timefmt::now().unix_timestamp()),
        file: Some("objectstack.json".into()),
        id: Some(model.manifest.id.clone()),
        version: Some(model.manifest.version.to_string()),
        sha256: Some(signing::sha256_hex(&bytes)),
        expires: None,
        malformed_expiry: None,
    };
    let sig = secret.sign_bytes(&bytes, &claims.to_comment())?;
    write_atomic(
        &PathBuf::from(format!("{}.minisig", artifact.display())),
        sig.as_bytes(),
        Some(0o644),
        false,
    )?;
    step(ctx, format!("signed it with key {}", secret.public.id));

    let instance = Instance::open(dir)?;
    let origin = Origin::operator();
    let outcome = crate::artifact::verify::verify(&crate::artifact::verify::Request {
        artifact: &artifact,
        signature: &PathBuf::from(format!("{}.minisig", artifact.display())),
        keys: std::slice::from_ref(&secret.public),
        pin: None,
        now: timefmt::now(),
    })?;
    if let Some((reason, message)) = outcome.failure {
        anyhow::bail!("the quickstart artifact did not verify: {reason}: {message}");
    }
    step(ctx, "verified the signature, digest and contents");
    let trusted = instance
        .trust_dir()
        .join(format!("{}.pub", secret.public.id));
    if !trusted.exists() {
        crate::commands::trust::add_key(&instance, &origin, &secret.public)?;
        step(ctx, format!("trusted key {}", secret.public.id));
    }
    // Through the one loader: an applied artifact that no longer verifies is
    // applied again.
    let applied =
        crate::instance::applied::load(&instance, crate::instance::applied::Purpose::Enforce)
            .ok()
            .flatten()
            .map(|a| a.row.sha256);
    if applied.as_deref() == Some(signing::sha256_hex(&bytes).as_str()) {
        step(ctx, "the artifact is already applied");
    } else {
        apply::run(
            ApplyArgs {
                artifact: artifact.clone(),
                plan: false,
                allow_destructive: false,
                allow_downgrade: true,
                yes: true,
                signature: None,
            },
            &quiet,
        )?;
        step(
            ctx,
            "applied the artifact (tables, indexes, permission sets, sharing rules)",
        );
    }

    let bootstrapped = instance
        .store
        .read(|tx| Ok(tx.meta_get("bootstrap_org")?))?
        .is_some();
    if !bootstrapped {
        let password = format!("qs-{}", uuid::Uuid::new_v4().simple());
        let pw_file = work.join("admin-password");
        write_atomic(
            &pw_file,
            format!("{password}\n").as_bytes(),
            Some(0o600),
            false,
        )?;
        let (_, _, org) = identity::bootstrap(&instance, &origin, ADMIN, "default", &password)?;
        step(
            ctx,
            format!(
                "bootstrapped organization `{}` with administrator {ADMIN} (password in `{}`)",
                org.name,
                pw_file.display()
            ),
        );
        seed(&instance, &origin, &model)?;
        step(
            ctx,
            format!("added {REP} (sales_rep) and {MANAGER} (sales_manager) with a few records"),
        );
    } else {
        step(
            ctx,
            "already bootstrapped; the sample users and records are kept",
        );
    }

    // Fresh keys each run: only hashes are kept, so the old ones are revoked.
    let mut keys = Vec::new();
    // The last is the rep's agent key, for MCP.
    for (email, agent) in [(ADMIN, false), (REP, false), (MANAGER, false), (REP, true)] {
        let old: Vec<String> = instance.store.read(|tx| {
            let user = identity::user_by_email(tx, email)?;
            Ok(tx
                .apikeys()?
                .into_iter()
                .filter(|k| {
                    k.user_id == user.id
                        && k.name.as_deref() == Some(KEY_NAME)
                        && k.revoked_at.is_none()
                        && (k.kind == crate::store::KeyKind::Agent) == agent
                })
                .map(|k| k.id)
                .collect())
        })?;
        for id in old {
            identity::revoke_key(&instance, &origin, &id)?;
        }
        let (token, _) = identity::create_key(
            &instance,
            &origin,
            Some(&model),
            NewKey {
                email,
                agent,
                read_only: false,
                org: None,
                name: Some(KEY_NAME),
                expires_at: None,
            },
        )?;
        keys.push((email, agent, token));
    }
    step(
        ctx,
        "created fresh API keys for the sample users (the ones printed before are revoked)",
    );
    let base = format!("http://{}", args.listen);
    // The deal the curl commands read, found through the records service as the rep.
    let rep = Caller::operator_as(&instance, &model, REP, None)?;
    let found = Records::new(&instance, &model)
        .list(
            &rep,
            &QuerySpec {
                fields: Some(vec!["id".into()]),
                filter: Filter::Cmp {
                    field: "name".into(),
                    op: FilterOp::Eq(json!("Acme renewal")),
                },
                limit: 1,
                ..QuerySpec::all("crm_opportunity")
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot find the sample deal: {e}"))?;
    let deal = found
        .records
        .first()
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !ctx.out.quiet {
        let key_of = |email: &str| {
            keys.iter()
                .find(|(e, agent, _)| *e == email && !agent)
                .map(|(_, _, k)| k.clone())
                .unwrap_or_default()
        };
        let agent_key = keys
            .iter()
            .find(|(_, agent, _)| *agent)
            .map(|(_, _, k)| k.clone())
            .unwrap_or_default();
        println!();
        println!("API keys (shown once; run quickstart again for new ones):");
        for (email, agent, key) in &keys {
            let who = if *agent {
                format!("{email} (agent)")
            } else {
                email.to_string()
            };
            println!("  {who:24} {key}");
        }
        println!();
        println!("Try it (in another terminal):");
        println!("  # the sales rep lists their opportunities");
        println!(
            "  curl -s -H 'Authorization: Bearer {}' '{base}/api/v1/data/crm_opportunity?fields=name,amount,stage'",
            key_of(REP)
        );
        println!("  # the manager reads the deal, including its discount approval note");
        println!(
            "  curl -s -H 'Authorization: Bearer {}' '{base}/api/v1/data/crm_opportunity/{deal}'",
            key_of(MANAGER)
        );
        println!("  # the rep reads the same deal: the note stays hidden");
        println!(
            "  curl -s -H 'Authorization: Bearer {}' '{base}/api/v1/data/crm_opportunity/{deal}'",
            key_of(REP)
        );
        println!();
        println!("Connect an AI agent as the rep (the MCP server an agent host launches):");
        println!("  OBJECTOS_API_KEY={agent_key} objectos mcp --server {base}");
        println!("Review what it proposes (deletes, sensitive fields), as the manager:");
        println!(
            "  OBJECTOS_REVIEW_KEY={} objectos review --server {base}",
            key_of(MANAGER)
        );
        println!();
    }
    drop(instance);
    step(ctx, format!("serving on {base} (Ctrl-C stops it)"));
    serve::run(
        ServeArgs {
            listen: args.listen,
            public: args.public,
            log_format: LogFormat::Text,
            trusted_proxies: Vec::new(),
            mcp_allowed_origins: Vec::new(),
            max_connections: crate::limits::MAX_CONNECTIONS,
            client_timeout: crate::limits::CLIENT_TIMEOUT_SECS,
            request_timeout: crate::limits::REQUEST_TIMEOUT_SECS,
        },
        ctx,
    )
}

/// The sample users and their records, made through the records service as them.
fn seed(instance: &Instance, origin: &Origin, model: &crate::model::Model) -> anyhow::Result<()> {
    for (email, set, name) in [
        (REP, "sales_rep", "Riley Rep"),
        (MANAGER, "sales_manager", "Morgan Manager"),
    ] {
        identity::add_user(
            instance,
            origin,
            NewUser {
                email,
                name: Some(name),
                org: None,
                password: None,
            },
        )?;
        identity::assign(instance, origin, Some(model), set, email, None, None)?;
    }
    let caller = |email: &str| Caller::operator_as(instance, model, email, None);
    let rep = caller(REP)?;
    let manager = caller(MANAGER)?;
    let records = Records::new(instance, model);
    let obj = |v: Value| -> Map<String, Value> { v.as_object().cloned().unwrap_or_default() };
    let account = records.create(&rep, "crm_account", &obj(json!({"name": "Acme Corp", "account_number": "ACME-001", "industry": "manufacturing", "website": "https://acme.example"})))?;
    let account_id = account.get("id").cloned().unwrap_or(Value::Null);
    records.create(&rep, "crm_contact", &obj(json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example", "account": account_id})))?;
    let deal = records.create(&rep, "crm_opportunity", &obj(json!({"name": "Acme renewal", "account": account_id, "amount": 120000, "stage": "negotiation", "region": "emea", "close_date": "2027-03-31"})))?;
    records.create(&rep, "crm_opportunity", &obj(json!({"name": "Acme pilot", "account": account_id, "amount": 15000, "stage": "proposal", "region": "emea"})))?;
    records.create(&manager, "crm_opportunity", &obj(json!({"name": "Globex expansion", "amount": 480000, "stage": "prospecting", "region": "amer"})))?;
    let deal_id = deal
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // The rep shares the deal with the manager, who records the discount approval:
    // a sensitive field the rep may not read.
    records.share(
        &rep,
        "crm_opportunity",
        &deal_id,
        &Share {
            kind: "user",
            grantee: MANAGER,
            edit: true,
        },
        true,
    )?;
    records.update(&manager, "crm_opportunity", &deal_id, &obj(json!({"discount_approval_note": "12% discount approved by the CFO on condition of a 3-year term"})))?;
    Ok(())
}
