//! Workload (e): `objectos verify` against `minisign -V` on the same ~10 MB
//! artifact, both timed as processes, side by side, alternating runs (targets:
//! the signature and digest check within 1.5× minisign, the whole verify,
//! validation included, within 3×).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Options;
use crate::report::Samples;

pub struct Verify {
    pub bytes: u64,
    pub objects: usize,
    /// minisign -V on the artifact, and on noise of the same size.
    pub minisign_artifact: Samples,
    pub minisign_noise: Samples,
    /// objectos verify on the noise: it stops right after the signature and digest check.
    pub ours_check: Samples,
    /// objectos verify on the artifact: signature, digest, expiry and validation.
    pub ours_full: Samples,
}

pub fn measure(opts: &Options) -> Result<Verify> {
    let d = &crate::subdir(&opts.work, "verify")?;
    let bin = &opts.objectos_bin;
    let src = d.join("big.json");
    write_big_source(&src, opts.verify_objects)?;
    run(Command::new(bin)
        .args(["build", "-q"])
        .arg(&src)
        .arg("-o")
        .arg(d.join("artifact.json")))?;
    let size = std::fs::metadata(d.join("artifact.json"))?.len();
    run(Command::new(bin)
        .args(["keygen", "-q", "--unencrypted", "-o"])
        .arg(d.join("k")))?;
    run(Command::new(bin)
        .args(["sign", "-q"])
        .arg(d.join("artifact.json"))
        .arg("-k")
        .arg(d.join("k")))?;
    // The same number of bytes that are not JSON: verify stops right after the
    // signature and digest check, so its time is that check (plus process start).
    let mut noise = vec![0u8; size as usize];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8 | 0x80;
    }
    std::fs::write(d.join("noise.bin"), &noise)?;
    // `sign` refuses what is not an artifact, so minisign signs the noise.
    run(Command::new("minisign")
        .args(["-S", "-s"])
        .arg(d.join("k"))
        .arg("-m")
        .arg(d.join("noise.bin"))
        .arg("-x")
        .arg(d.join("noise.bin.minisig")))?;
    // objectos verify on the noise must fail at validation, after the check passed.
    let check = Command::new(bin)
        .args(["verify", "-q"])
        .arg(d.join("noise.bin"))
        .arg("-p")
        .arg(d.join("k.pub"))
        .output()?;
    let said = String::from_utf8_lossy(&check.stderr);
    if check.status.success() || said.contains("signature") {
        bail!(
            "objectos verify on signed noise should pass the signature check and fail later: {said}"
        );
    }

    let runs = opts.verify_runs;
    let mut minisign_artifact = Samples::default();
    let mut minisign_noise = Samples::default();
    let mut ours_check = Samples::default();
    let mut ours_full = Samples::default();
    let minisign = |file: &str| {
        let mut c = Command::new("minisign");
        c.args(["-Vq", "-m"])
            .arg(d.join(file))
            .arg("-p")
            .arg(d.join("k.pub"));
        c
    };
    let ours = |file: &str| {
        let mut c = Command::new(bin);
        c.args(["verify", "-q"])
            .arg(d.join(file))
            .arg("-p")
            .arg(d.join("k.pub"));
        c
    };
    // One warm-up of each (page cache), then alternating runs.
    for mut c in [
        minisign("artifact.json"),
        minisign("noise.bin"),
        ours("artifact.json"),
    ] {
        time(&mut c, true)?;
    }
    for _ in 0..runs {
        minisign_artifact.push(time(&mut minisign("artifact.json"), true)?);
        ours_check.push(time(&mut ours("noise.bin"), false)?);
        minisign_noise.push(time(&mut minisign("noise.bin"), true)?);
        ours_full.push(time(&mut ours("artifact.json"), true)?);
    }
    Ok(Verify {
        bytes: size,
        objects: opts.verify_objects,
        minisign_artifact,
        minisign_noise,
        ours_check,
        ours_full,
    })
}

fn run(cmd: &mut Command) -> Result<()> {
    crate::proc::output(cmd).map(|_| ())
}

/// Wall time of one run; `must_pass`: an error unless it exits 0.
fn time(cmd: &mut Command, must_pass: bool) -> Result<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let took = start.elapsed();
    if must_pass && !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(took)
}

fn write_big_source(path: &Path, objects: usize) -> Result<()> {
    use serde_json::json;
    let mut objs = Vec::new();
    let mut perms = serde_json::Map::new();
    for i in 0..objects {
        let name = format!("big_object_{i:05}");
        let mut fields = serde_json::Map::new();
        for f in 0..30 {
            let field = match f % 5 {
                0 => {
                    json!({"type": "text", "label": format!("Text field {f} of object {i}"), "maxLength": 200, "description": "A field that exists to make the artifact realistically large"})
                }
                1 => {
                    json!({"type": "number", "label": format!("Number {f}"), "min": 0, "max": 1_000_000})
                }
                2 => {
                    json!({"type": "select", "label": format!("Choice {f}"), "options": [{"label": "One", "value": "one"}, {"label": "Two", "value": "two"}, {"label": "Three", "value": "three"}]})
                }
                3 => json!({"type": "date", "label": format!("Date {f}")}),
                _ => {
                    json!({"type": "boolean", "label": format!("Flag {f}"), "defaultValue": false})
                }
            };
            fields.insert(format!("field_{f:02}"), field);
        }
        objs.push(json!({"name": name, "label": format!("Object {i}"), "sharingModel": "private", "fields": fields}));
        perms.insert(
            name,
            json!({"allowRead": true, "allowCreate": true, "allowEdit": true}),
        );
    }
    let doc = json!({
        "manifest": {"id": "com.example.big", "namespace": "big", "version": "1.0.0", "name": "Big", "engines": {"protocol": "^17"}},
        "objects": objs,
        "permissions": [{"name": "everyone_rw", "objects": perms, "systemPermissions": ["api_access"]}]
    });
    std::fs::write(path, serde_json::to_vec(&doc)?)?;
    Ok(())
}
