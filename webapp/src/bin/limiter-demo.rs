//! `limiter-demo`: serves the limiter's demo app, configured like the real one
//! (Rocket.toml, `ROCKET_PORT`, `ROCKET_LIMITER`). The clock-skew test runs it under faketime.

#[rocket::launch]
fn rocket() -> _ {
    webapp::limiter::demo::rocket(rocket::Config::figment())
}
