//! `flow serve`: a read-only web dashboard over a data dir. The home page shows the
//! runs over time, success rates, failures, durations (histograms and trends) per
//! pipeline and step, the slowest and flakiest steps, recent failures and the runs
//! (filtered by pipeline, status, input and dates); a run's page is `flow report`'s,
//! or for a run in progress, its steps as they go. JSON endpoints give the same
//! figures.
//!
//! It never holds the data dir: it copies the store (through
//! `Store::open_reader`) when the store changed, and reads runs in progress from the
//! live files `flow run` writes beside the store.

mod charts;
mod html;
mod live;
mod pages;
mod query;
mod server;
mod snapshot;

pub(crate) use server::{Options, ServeError, Verify, serve};
