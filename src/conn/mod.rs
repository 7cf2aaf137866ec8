//! How to reach a database and hold it: connection strings (URL, keywords,
//! `PG*` environment, service file, password file), TLS per `sslmode`, the
//! pinned session, the exported snapshot, table locks taken up front, and SSH
//! tunnels through a bastion.

pub mod conn_string;
pub mod conninfo;
pub mod locks;
pub mod pgpass;
pub mod session;
pub mod snapshot;
mod tls;
pub mod tunnel;
