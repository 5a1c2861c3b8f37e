//! A small, dependency-light git object reader and tree checkout.
//!
//! Built to run inside a WebAssembly plugin (`wasm32-wasip2`): it uses only `std::fs`/`std::io`
//! (no mmap, threads, libc or processes). It reads:
//!
//! - repositories: work trees (`.git` directory or `gitdir:` file, linked work trees), bare
//!   repositories, `objects/info/alternates`;
//! - refs: loose, `packed-refs` (with peeled lines), symbolic, detached `HEAD`;
//! - objects: loose (zlib), pack index v2, packs with `OFS_DELTA` and `REF_DELTA` entries (bases
//!   anywhere), with a bounded LRU cache of delta bases.
//!
//! and checks a tree out through a [`Sink`] ([`FsSink`] writes to a directory).
//!
//! ```no_run
//! use flow_git::{FsSink, Repository};
//! let repo = Repository::open("/path/to/repo")?;
//! let rev = repo.resolve(Some("main"))?;
//! let report = repo.checkout(rev.tree, &mut FsSink::new("/tmp/out"))?;
//! println!("{} files, {} bytes", report.files, report.bytes);
//! # Ok::<(), flow_git::Error>(())
//! ```
//!
//! Corrupt input is reported as [`Error`], never a panic; declared sizes are only trusted up to
//! [`OpenOptions::max_object_size`] and never pre-allocated beyond 64 MiB.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkout;
mod error;
mod loose;
mod object;
mod odb;
mod oid;
mod pack;
mod refs;
mod repo;
mod zlib;

pub use checkout::{
    CheckoutReport, FnHooks, FsHooks, FsSink, NativeHooks, Progress, Sink, Submodule,
};
pub use error::{Error, Result};
pub use object::{
    EntryMode, Object, ObjectKind, TagTarget, TreeEntries, TreeEntry, commit_parents,
    parse_commit_tree, parse_tag, tree_entries,
};
pub use oid::ObjectId;
pub use repo::{OpenOptions, Repository, Resolved};
