//! Host capabilities, one module each. A step can use only what its grants
//! name; by default it sees its workspace and nothing else.
//!
//! Today: the workspace and granted directories ([`fs`]), the step log
//! ([`log`]) and outputs. `env`, `net`, `exec` and `secrets` grants are
//! parsed and refused by the checker until their capabilities land.

pub mod fs;
pub mod log;
pub(crate) mod outputs;
