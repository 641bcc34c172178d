//! Integration tests of the shortener against a real PostgreSQL (one database per
//! test), built as one test binary so the workspace links it once.

mod bad_input;
mod browser;
mod common;
mod limited;
mod links;
mod passwords;
mod routes;
mod store;
