//! Benchmark: `objectos verify` against `minisign -V` on the same ~10 MB artifact.
//!
//! Run with `cargo bench --bench verify`. Prints medians and ratios (design §9:
//! signature and digest check within 1.5× minisign, whole verify within 3×).
//! Both tools are timed as processes, side by side, alternating runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_objectos");

fn main() {
    if Command::new("minisign")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("minisign is not installed; run scripts/setup");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let src = d.join("big.json");
    write_big_source(&src, 2500);
    run(Command::new(BIN)
        .args(["build", "-q"])
        .arg(&src)
        .arg("-o")
        .arg(d.join("artifact.json")));
    let size = std::fs::metadata(d.join("artifact.json")).unwrap().len();
    run(Command::new(BIN)
        .args(["keygen", "-q", "--unencrypted", "-o"])
        .arg(d.join("k")));
    run(Command::new(BIN)
        .args(["sign", "-q"])
        .arg(d.join("artifact.json"))
        .arg("-k")
        .arg(d.join("k")));
    // The same bytes that are not JSON: verify stops right after the signature and
    // digest check, so its time is that check (plus process start).
    let mut noise = vec![0u8; size as usize];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8 | 0x80;
    }
    std::fs::write(d.join("noise.bin"), &noise).unwrap();
    // `sign` refuses invalid artifacts, so sign the noise with minisign itself.
    run(Command::new("minisign")
        .args(["-S", "-s"])
        .arg(d.join("k"))
        .arg("-m")
        .arg(d.join("noise.bin"))
        .arg("-x")
        .arg(d.join("noise.bin.minisig")));

    println!("artifact: {:.1} MB, {} objects", size as f64 / 1e6, 2500);
    let rounds = 15;
    let minisign_full = time(rounds, || {
        Command::new("minisign")
            .args(["-Vq", "-m"])
            .arg(d.join("artifact.json"))
            .arg("-p")
            .arg(d.join("k.pub"))
            .status()
    });
    let ours_sig = time(rounds, || {
        Command::new(BIN)
            .args(["verify", "-q"])
            .arg(d.join("noise.bin"))
            .arg("-p")
            .arg(d.join("k.pub"))
            .stderr(Stdio::null())
            .status()
    });
    let minisign_noise = time(rounds, || {
        Command::new("minisign")
            .args(["-Vq", "-m"])
            .arg(d.join("noise.bin"))
            .arg("-p")
            .arg(d.join("k.pub"))
            .status()
    });
    let ours_full = time(rounds, || {
        Command::new(BIN)
            .args(["verify", "-q"])
            .arg(d.join("artifact.json"))
            .arg("-p")
            .arg(d.join("k.pub"))
            .stdout(Stdio::null())
            .status()
    });
    println!(
        "minisign -V (artifact)            {:>8.2} ms",
        ms(minisign_full)
    );
    println!(
        "minisign -V (same size, noise)    {:>8.2} ms",
        ms(minisign_noise)
    );
    println!(
        "objectos signature+digest check   {:>8.2} ms   ratio {:.2}x (target <= 1.5x)",
        ms(ours_sig),
        ms(ours_sig) / ms(minisign_noise)
    );
    println!(
        "objectos verify (with validation) {:>8.2} ms   ratio {:.2}x (target <= 3x)",
        ms(ours_full),
        ms(ours_full) / ms(minisign_full)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(cmd: &mut Command) -> Option<()> {
    let status = cmd.status().expect("spawn");
    status.success().then_some(())
}

/// Median wall time of `rounds` runs (after one warm-up).
fn time(
    rounds: usize,
    mut f: impl FnMut() -> std::io::Result<std::process::ExitStatus>,
) -> Duration {
    f().expect("spawn");
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f().expect("spawn");
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn write_big_source(path: &Path, objects: usize) {
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
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}
