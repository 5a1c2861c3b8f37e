//! `flow` as a user runs it: each test sets up files in a temp dir, runs the
//! binary, and asserts what it printed and how it exited.
//!
//! Run with `cargo test -p flow-engine --test cli`.

mod session;

mod cache;
mod check;
mod checkout;
mod exec;
mod net;
mod plugins;
mod provenance;
mod publish;
mod resume;
mod retry;
mod run;
mod sandbox;
mod scan;
mod secrets;
mod security;
mod sign;
mod stats;
mod store;
mod templates;
