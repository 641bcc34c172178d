//! The `provisioner` binary: everything lives in the library; see `provisioner::cli`.

fn main() -> std::process::ExitCode {
    provisioner::cli::run(std::env::args_os())
}
