//! How to reach a database and hold it: connection strings (URL, keywords,
//! `PG*` environment, service file, password file), TLS per `sslmode`, the
//! pinned session, the exported snapshot, table locks taken up front, SSH
//! tunnels through a bastion, and the statement trace of `--verbose`.

pub mod conn_string;
pub mod conninfo;
pub mod locks;
pub mod pgpass;
pub mod read_gate;
pub mod session;
pub mod snapshot;
mod socket;
mod tls;
pub mod trace;
pub mod tunnel;
