//! How to reach a database and hold it: connection strings (URL, keywords,
//! `PG*` environment, service file, password file), TLS per `sslmode`, the
//! pinned session, the exported snapshot, and table locks taken up front.

pub mod conn_string;
pub mod conninfo;
pub mod locks;
pub mod pgpass;
pub mod session;
pub mod snapshot;
mod tls;
