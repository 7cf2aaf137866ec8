//! Where backups live and how their files are written and read back: a local
//! folder or `s3://bucket/prefix`, atomic sinks, block readers, the manifest,
//! opening files without leaving the folder, and one writer per folder.

pub mod confined;
pub mod folder_lock;
pub mod location;
pub mod manifest;
pub mod s3;
pub mod sealed;
pub mod sink;
pub mod source;
