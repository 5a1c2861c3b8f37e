//! flow-scan (work in progress)
