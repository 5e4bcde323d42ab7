//! Workload (d), in process and without HTTP: the records service's authorised
//! list (rights, sharing rules, field security) against the same page as raw SQL
//! through rusqlite on the same file, with no enforcement — the limit.
//!
//! The raw query is what a hand-written app would send for a rep's prospecting
//! deals: the closed-won branch of the rule cannot match `stage = 'prospecting'`,
//! so it is left out, and the (owner, stage) lookup is all that remains. Both
//! must return the same ids, or the harness stops.

use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::Options;
use crate::objectos::{OBJECT, Site};
use crate::report::Samples;

/// (records service, raw SQL): per-call times of rounds in which the two take
/// turns call by call.
pub struct InProcess {
    pub service: Samples,
    pub raw: Samples,
    pub plan: String,
}

pub fn measure(opts: &Options, site: &Site) -> Result<InProcess> {
    let data = site.data_dir();
    let instance = objectos::instance::Instance::open(&data).context("open the data dir")?;
    let model = objectos::instance::applied::require(&instance)
        .context("the applied artifact")?
        .model;
    let records = objectos::records::Records::new(&instance, &model);
    let db = data.join("objectos.db");
    let raw = rusqlite::Connection::open(&db)?;
    // The page cache, memory map and plan stability objectos gives its own
    // connections (without the last, the cached statement would be planned again
    // on every call).
    raw.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    raw.execute_batch(&format!(
        "PRAGMA cache_size = -{}; PRAGMA mmap_size = 0;",
        objectos::store::sqlite::PAGE_CACHE_KIB
    ))?;
    let org: String = raw.query_row("SELECT id FROM objectos_orgs LIMIT 1", [], |r| r.get(0))?;
    let email = "rep00@bench.example";
    let rep: String = raw.query_row(
        "SELECT id FROM objectos_users WHERE email = ?1",
        [email],
        |r| r.get(0),
    )?;
    let principal = instance
        .store
        .read(|tx| {
            let user = tx
                .user_by_email(email)?
                .ok_or_else(|| anyhow::anyhow!("no user {email}"))?;
            objectos::authz::Principal::load(
                tx,
                Some(&model),
                &user,
                &org,
                &objectos::timefmt::now(),
            )
        })
        .context("load the rep's principal")?;
    let caller = objectos::records::Caller {
        principal,
        origin: objectos::audit::Origin::system(),
    };
    let spec = objectos::query::request::from_list_params(
        OBJECT,
        &[
            (
                "filter".to_string(),
                r#"{"stage":"prospecting"}"#.to_string(),
            ),
            ("sort".to_string(), "-amount".to_string()),
            ("limit".to_string(), "20".to_string()),
        ],
    )
    .map_err(|e| anyhow::anyhow!("the list query: {e:?}"))?;
    // Every column the service returns to the rep (the rep may read every field).
    let table = format!("rec_{OBJECT}");
    let columns = "id, owner_id, organization_id, created_by, created_at, updated_by, updated_at, row_version, amount, close_date, discount_note, name, region, stage";
    let sql = format!(
        "SELECT {columns} FROM \"{table}\" WHERE organization_id = ?1 AND owner_id = ?2 AND stage = 'prospecting' ORDER BY amount DESC, id LIMIT 21"
    );
    let width = columns.split(',').count();

    let service_page = records
        .list(&caller, &spec)
        .map_err(|e| anyhow::anyhow!("the records service refused the list: {e:?}"))?;
    let service_ids: Vec<String> = service_page
        .records
        .iter()
        .filter_map(|r| r.get("id").and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    let raw_ids: Vec<String> = {
        let mut stmt = raw.prepare_cached(&sql)?;
        stmt.query_map([&org, &rep], |r| r.get::<_, String>(0))?
            .take(20)
            .collect::<Result<_, _>>()?
    };
    if service_ids.len() != 20 || service_ids != raw_ids {
        bail!(
            "the records service and the raw query disagree (so they are not the same query):\nservice {service_ids:?}\nraw     {raw_ids:?}"
        );
    }

    // The two sides take turns call by call, who goes first alternating by
    // round: this machine's speed drifts by a factor of three within seconds
    // (other tenants of the host), and blocks of a thousand calls each then
    // compared different machines more than different code.
    let mut service = Samples::default();
    let mut baseline = Samples::default();
    let per_round = opts.inproc_iterations;
    let rounds = if opts.smoke() { 2 } else { 5 };
    let list = || -> Result<std::time::Duration> {
        let t = Instant::now();
        let page = records
            .list(&caller, &spec)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let took = t.elapsed();
        if page.records.len() != 20 {
            bail!("the service returned {} records", page.records.len());
        }
        Ok(took)
    };
    let query = || -> Result<std::time::Duration> {
        let t = Instant::now();
        let mut stmt = raw.prepare_cached(&sql)?;
        let rows: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([&org, &rep], |r| (0..width).map(|i| r.get(i)).collect())?
            .collect::<Result<_, _>>()?;
        let took = t.elapsed();
        if rows.len() < 20 {
            bail!("the raw query returned {} rows", rows.len());
        }
        Ok(took)
    };
    for round in 0..rounds {
        let mut service_times = Vec::with_capacity(per_round);
        let mut raw_times = Vec::with_capacity(per_round);
        for _ in 0..per_round {
            if round % 2 == 0 {
                service_times.push(list()?);
                raw_times.push(query()?);
            } else {
                raw_times.push(query()?);
                service_times.push(list()?);
            }
        }
        let mean = |times: &[std::time::Duration]| {
            times.iter().sum::<std::time::Duration>() / per_round as u32
        };
        service.push_round(mean(&service_times), service_times);
        baseline.push_round(mean(&raw_times), raw_times);
    }
    let plan: Vec<String> = {
        let mut stmt = raw.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        stmt.query_map([&org, &rep], |r| r.get::<_, String>(3))?
            .collect::<Result<_, _>>()?
    };
    Ok(InProcess {
        service,
        raw: baseline,
        plan: plan.join("; "),
    })
}
