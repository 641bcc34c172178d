//! Integration tests of the shortener against a real PostgreSQL (one database per
//! test), built as one test binary so the workspace links it once.

mod bad_input;
mod browser;
mod common;
mod launch;
mod limited;
mod links;
mod openapi;
mod outage;
mod passwords;
mod proxy;
mod routes;
mod schemathesis;
mod store;
