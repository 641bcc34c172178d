//! webapp: the Rocket URL shortener and its Redis-backed global rate limiter.

pub mod limiter;
