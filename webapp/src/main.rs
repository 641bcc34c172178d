//! The `webapp` binary: launches the app configured from Rocket.toml and `ROCKET_*`;
//! when it cannot start, says why on stderr and exits non-zero.

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    match webapp::launch::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("webapp: error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
