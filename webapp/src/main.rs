//! The `webapp` binary: launches the app configured from Rocket.toml and `ROCKET_*`.

#[rocket::launch]
fn launch() -> _ {
    webapp::rocket()
}
