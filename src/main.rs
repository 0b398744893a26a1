//! The `fsgate` binary; everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    fsgate::cli::main()
}
