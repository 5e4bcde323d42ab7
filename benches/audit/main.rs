//! Benchmark: `audit export` and `audit verify-archive` of 1,000,000 events
//! (target: at least 200,000 events/s and under 64 MiB of peak RSS each),
//! beside `sha256sum` and `tar -x` over the same archive.
//!
//! Run with `cargo bench --bench audit`; `OBJECTOS_BENCH_EVENTS=10000` for a
//! short run; `OBJECTOS_BENCH_DIR=DIR` to build (and keep) the data dir and the
//! archive there, for a profiler. It prints the figures and asserts nothing (a
//! test runs the short mode to keep it working).

mod harness;

const BIN: &str = env!("CARGO_BIN_EXE_objectos");

fn main() {
    let events: u64 = std::env::var("OBJECTOS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let kept = std::env::var_os("OBJECTOS_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = match &kept {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("OBJECTOS_BENCH_DIR");
            dir.as_path()
        }
        None => tmp.path(),
    };
    let figures = harness::run(std::path::Path::new(BIN), dir, events);
    print!("{}", figures.report());
}
