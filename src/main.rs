#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    objectos::run(std::env::args_os())
}

// Validation of large artifacts and the server's request handling allocate many
// small objects; mimalloc is markedly faster at that than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
