//! flow-oci (work in progress)
