//! Host capabilities, one module each. A step can use only what its grants
//! name; by default it sees its workspace and nothing else.
//!
//! Today: the workspace and granted directories ([`fs`]), executable bits and
//! symbolic links in them ([`files`]), host commands and environment
//! variables ([`exec`]), the step log ([`log`]), outputs, and provenance
//! claims ([`claims`]). `net` and `secrets` grants are parsed and refused by
//! the checker until their capabilities land.

pub mod claims;
pub mod exec;
pub(crate) mod files;
pub mod fs;
pub mod log;
pub mod net;
pub(crate) mod outputs;
pub mod secrets;
pub mod signing;
