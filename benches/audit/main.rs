//! Benchmark: `audit export` and `audit verify-archive` of 1,000,000 events
//! (design §9: at least 200,000 events/s and under 64 MiB of peak RSS each),
//! beside `sha256sum` and `tar -x` over the same archive.
//!
//! Run with `cargo bench --bench audit`; `OBJECTOS_BENCH_EVENTS=10000` for a
//! short run. It prints the figures and asserts nothing (a test runs the short
//! mode to keep it working).

mod harness;

const BIN: &str = env!("CARGO_BIN_EXE_objectos");

fn main() {
    let events: u64 = std::env::var("OBJECTOS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let figures = harness::run(std::path::Path::new(BIN), tmp.path(), events);
    print!("{}", figures.report());
}
