#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    objectos::run(std::env::args_os())
}
