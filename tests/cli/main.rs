//! `flow` as a user runs it: each test sets up files in a temp dir, runs the
//! binary, and asserts what it printed and how it exited.
//!
//! Run with `cargo test -p flow-engine --test cli`.

mod browser;
mod session;

mod cache;
mod check;
mod checkout;
mod disk;
mod events;
mod exec;
mod net;
mod plugins;
mod progress;
mod provenance;
mod publish;
mod report;
mod resume;
mod retry;
mod run;
mod sandbox;
mod scan;
mod secrets;
mod security;
mod serve;
mod sign;
mod soak;
mod stats;
mod store;
mod templates;
mod upgrade;
