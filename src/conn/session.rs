//! Opening sessions: TLS as libpq's `sslmode` says (see `tls`), the pinned session settings
//! that make COPY's text deterministic, and snapshots shared by workers.
//!
//! Every error here names the connection by its display form (never the
//! password) and carries a hint at what to check.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::DbError;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};

use super::read_gate::{Gated, GatedTls, LargeRows, ReadGate};
use super::socket::RawSocket;
use super::trace::traced;

use super::tls::tls_config;
use crate::conn::conninfo::{ConnInfo, SslMode};
use crate::error::{Error, Result};

/// The settings that change COPY's text, pinned in every session (DESIGN.md,
/// "Deterministic text"), plus timeouts that must not cut a long COPY short.
const PINNED_SETTINGS: &str = "SET client_encoding = 'UTF8';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
SET standard_conforming_strings = on;
SET statement_timeout = 0;
SET idle_in_transaction_session_timeout = 0;";

/// What a session is for, which decides what is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reading or writing table data: everything pinned, and `search_path` set
    /// to `pg_catalog` so no user object can shadow what pgbarge calls, and type
    /// and default expressions come back schema-qualified; synchronized
    /// sequential scans off, so a table read twice reads in the same order.
    Data,
    /// Running the user's own SQL files: the user's `search_path` is kept.
    UserSql,
}

/// An open session and what it is connected to.
pub struct Session {
    pub client: Client,
    pub info: Arc<ConnInfo>,
    /// The connection task's own error: when the server ends a session (a
    /// terminated backend, a shutdown) the client only sees "connection
    /// closed", and the FATAL message with its SQLSTATE lands here.
    conn_error: Arc<std::sync::Mutex<Option<tokio_postgres::Error>>>,
    /// Becomes `true` when the connection task ends, for whoever must notice
    /// a session that dies while it sits idle (a backup's coordinator).
    ended: tokio::sync::watch::Receiver<bool>,
    /// How a cancel request reaches the server: over TLS when the session is.
    cancel_tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Where the socket was opened (a tunnel's local end, or the server).
    port: u16,
    hostaddr: Option<std::net::IpAddr>,
    /// Shared with the stream the connection reads (see [`Session::count_large_rows`]).
    gate: Arc<ReadGate>,
    /// The connection's I/O task, awaited by [`Session::close`].
    task: tokio::task::JoinHandle<()>,
    /// The server's NOTICE, WARNING and INFO messages, kept for sessions that
    /// run the user's SQL (shown as psql shows them); other sessions drop them.
    notices: Option<std::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<DbError>>>,
}

impl Session {
    /// Turns a client error into an `Error::Db` for `what`, replacing a bare
    /// "connection closed" with the server's reason when it sent one.
    pub async fn db_error(&self, what: impl Into<String>, e: tokio_postgres::Error) -> Error {
        if e.as_db_error().is_none() {
            // Let the connection task record why it ended.
            for _ in 0..10 {
                tokio::task::yield_now().await;
                if let Some(reason) =
                    self.conn_error.lock().unwrap_or_else(|p| p.into_inner()).take()
                {
                    return Error::db(what, reason);
                }
            }
        }
        Error::db(what, e)
    }
}

impl Session {
    /// The notices received since the last call, oldest first (none for a
    /// data session).
    pub fn take_notices(&self) -> Vec<DbError> {
        let mut out = Vec::new();
        if let Some(rx) = &self.notices {
            let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(n) = rx.try_recv() {
                out.push(n);
            }
        }
        out
    }

    /// Resolves when the session has ended (the server terminated it, shut
    /// down, or the network broke), with the server's reason when it sent one.
    /// An idle session notices at once: its connection task reads the
    /// server's FATAL message as it arrives.
    pub async fn ended(&self) -> Error {
        let mut rx = self.ended.clone();
        if rx.wait_for(|ended| *ended).await.is_err() {
            // The sender lives in the connection task; gone means ended too.
        }
        match self.conn_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(reason) => Error::db(format!("the session to {} ended", self.info), reason),
            None => Error::runtime(format!("the session to {} ended", self.info)),
        }
    }

    /// Awaits `fut`, a request on this session, racing cancellation. When a
    /// signal arrives first, a cancel request is sent to the server, so a
    /// statement waiting there (on a lock, a sleep, a slow query) stops at
    /// once instead of holding its locks until it finishes; the statement's
    /// error is then awaited for a moment, leaving the session ready for the
    /// caller's ROLLBACK.
    ///
    /// # Errors
    /// The signal's name when cancelled.
    pub async fn cancellable<F: std::future::Future>(
        &self,
        fut: F,
    ) -> std::result::Result<F::Output, &'static str> {
        let mut fut = std::pin::pin!(fut);
        let signal = tokio::select! {
            r = &mut fut => return Ok(r),
            signal = crate::cancel::cancelled() => signal,
        };
        self.cancel_server().await;
        let _ = tokio::time::timeout(CANCEL_GRACE, fut).await;
        Err(signal)
    }

    /// Awaits `fut`, work on this session, until `stop` resolves: then the
    /// server is asked to cancel what runs there and `fut` is given a moment
    /// to end by itself (its error, its rollback), else it is dropped.
    /// Returns `fut`'s output unless it was dropped.
    pub async fn until<F: std::future::Future>(
        &self,
        fut: F,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            r = &mut fut => return Some(r),
            () = stop => {}
        }
        self.cancel_server().await;
        tokio::time::timeout(CANCEL_GRACE, fut).await.ok()
    }

    /// Asks the server to cancel whatever this session is running (a cancel
    /// request on its own short connection, as psql sends on Ctrl-C).
    /// Harmless when nothing runs; failures are ignored, since the caller is
    /// stopping anyway.
    pub async fn cancel_server(&self) {
        let token = self.client.cancel_token();
        let cancel = async {
            let Ok(socket) = super::socket::open(&self.info, self.port, self.hostaddr).await else {
                return;
            };
            let _ = match &self.cancel_tls {
                None => token.cancel_query_raw(socket, NoTls).await,
                Some(tls) => match <_ as MakeTlsConnect<RawSocket>>::make_tls_connect(
                    &mut tls.clone(),
                    &self.info.host,
                ) {
                    Ok(tls) => token.cancel_query_raw(socket, tls).await,
                    Err(_) => return,
                },
            };
        };
        let _ = tokio::time::timeout(CANCEL_GRACE, cancel).await;
    }

    /// Counts the large rows of the `COPY ... TO STDOUT` about to start: the
    /// connection stops reading after each until the consumer releases it
    /// (see [`super::read_gate`]). Nothing may wait on this session for
    /// anything else while a row is held: that would never end.
    pub fn count_large_rows(&self) -> LargeRows {
        self.gate.count_large_rows()
    }

    /// Ends the session and waits until its connection task has ended, so
    /// that its buffers are freed (an open transaction is rolled back).
    pub async fn close(self) {
        let Session { client, task, .. } = self;
        drop(client);
        let _ = task.await;
    }

    /// Awaits `reads` (catalog queries on this session) with the server's
    /// JIT compilation off, then `RESET jit` (the role's or database's
    /// setting, if any, applies again to everything after, user code
    /// included). Why: on 10,000 tables several catalog queries cost more
    /// than `jit_above_cost`, and compiling them took longer than running
    /// them (`copy --dry-run` of 10,000 tables: 1.98 s -> 1.73 s). On a
    /// failure `reads`' error is returned and the setting is left to the
    /// transaction's end.
    ///
    /// # Errors
    /// `reads`' error, or the server's to either `SET`.
    pub async fn without_jit<T>(
        &self,
        reads: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.execute("SET jit = off", "cannot turn JIT compilation off for the catalog reads")
            .await?;
        let value = reads.await?;
        self.execute("RESET jit", "cannot reset JIT compilation after the catalog reads").await?;
        Ok(value)
    }

    /// Runs `sql` (one or more statements), racing cancellation.
    ///
    /// # Errors
    /// The server's error with `what` as its context, or `Interrupted`
    /// (the statement cancelled on the server).
    pub async fn execute(&self, sql: &str, what: impl Into<String>) -> Result<()> {
        self.request(self.batch_execute(sql), what).await
    }

    /// Awaits `fut`, a request on this session, as [`Session::cancellable`]
    /// does, and turns its failure into an `Error::Db` for `what` (with the
    /// server's reason when the session ended).
    ///
    /// # Errors
    /// The server's error with `what` as its context, or `Interrupted`.
    pub async fn request<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
        what: impl Into<String>,
    ) -> Result<T> {
        match self.cancellable(fut).await {
            Err(signal) => Err(Error::Interrupted { signal }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.db_error(what, e).await),
        }
    }

    /// The first column of the one row `sql` returns, racing cancellation.
    ///
    /// # Errors
    /// As [`Session::execute`].
    pub async fn query_value<T>(&self, sql: &str, what: impl Into<String>) -> Result<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        Ok(self.request(self.query_one(sql, &[]), what).await?.get(0))
    }
}

/// The client's requests, each traced under `--verbose` (see
/// [`super::trace`]): every statement pgbarge sends goes through these, so
/// the client itself is only used for what sends no SQL (cancel, prepare).
impl Session {
    /// `Client::query`, traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.query(sql, params)).await
    }

    /// `Client::query_one`, traced.
    ///
    /// # Errors
    /// The server's error, or not exactly one row.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Row, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.query_one(sql, params)).await
    }

    /// `Client::execute` (one statement with parameters), traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn execute_with(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.execute(sql, params)).await
    }

    /// `Client::batch_execute`, traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn batch_execute(&self, sql: &str) -> std::result::Result<(), tokio_postgres::Error> {
        traced(&self.info, sql, self.client.batch_execute(sql)).await
    }

    /// `Client::simple_query`, traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn simple_query(
        &self,
        sql: &str,
    ) -> std::result::Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.simple_query(sql)).await
    }

    /// `Client::copy_in`, traced (the time until the server is ready for rows).
    ///
    /// # Errors
    /// The server's error.
    pub async fn copy_in(
        &self,
        sql: &str,
    ) -> std::result::Result<tokio_postgres::CopyInSink<bytes::Bytes>, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.copy_in(sql)).await
    }

    /// `Client::prepare`, traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn prepare(
        &self,
        sql: &str,
    ) -> std::result::Result<tokio_postgres::Statement, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.prepare(sql)).await
    }

    /// `Client::copy_in` of `statement`, prepared from `sql`, traced.
    ///
    /// # Errors
    /// The server's error.
    pub async fn copy_in_prepared(
        &self,
        sql: &str,
        statement: &tokio_postgres::Statement,
    ) -> std::result::Result<tokio_postgres::CopyInSink<bytes::Bytes>, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.copy_in(statement)).await
    }

    /// `Client::copy_out`, traced (the time until the first data).
    ///
    /// # Errors
    /// The server's error.
    pub async fn copy_out(
        &self,
        sql: &str,
    ) -> std::result::Result<tokio_postgres::CopyOutStream, tokio_postgres::Error> {
        traced(&self.info, sql, self.client.copy_out(sql)).await
    }
}

/// How long a cancel request, and the cancelled statement's answer, are
/// waited for before the run stops anyway.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.info)
    }
}

/// Opens a session and pins its settings. The connection's I/O task is spawned on
/// the current tokio runtime, so call this on the runtime that will use it.
///
/// # Errors
/// `Error::Connect` with a hint for refused, unknown, authentication, database
/// and TLS failures; a usage error for an unreadable `sslrootcert`.
pub async fn connect(info: &Arc<ConnInfo>, purpose: Purpose) -> Result<Session> {
    // Through an SSH tunnel, the session connects to its local end, as
    // libpq's `hostaddr`: TLS still verifies `host`, and cancel requests take
    // the same path. The socket is opened here (see `socket`), so the config
    // only holds what the startup sends.
    let tunnel = super::tunnel::endpoint(info).await?;
    let mut config = Config::new();
    config
        .user(&info.user)
        .dbname(&info.dbname)
        .application_name(info.application_name.as_deref().unwrap_or("pgbarge"));
    if let Some(p) = info.password() {
        config.password(p);
    }
    let mode = info.effective_sslmode();
    let conn_error = Arc::new(std::sync::Mutex::new(None));
    let gate = Arc::new(ReadGate::default());
    let slot = conn_error.clone();
    let (ended_tx, ended) = tokio::sync::watch::channel(false);
    let record = move |r: std::result::Result<(), tokio_postgres::Error>| {
        if let Err(e) = r {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        ended_tx.send_replace(true);
    };
    let (notice_tx, notices) = if purpose == Purpose::UserSql {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Some(tx), Some(std::sync::Mutex::new(rx)))
    } else {
        (None, None)
    };
    let port = tunnel.map_or(info.port, |t| t.port());
    let hostaddr = tunnel.map(|t| t.ip()).or(info.hostaddr);
    let socket = super::socket::open(info, port, hostaddr)
        .await
        .map_err(|e| connect_error(info, BeforeServer::boxed("error connecting to server", e)))?;
    let (client, task, cancel_tls) = if mode == SslMode::Disable {
        config.ssl_mode(PgSslMode::Disable);
        let socket = Gated::new(socket, gate.clone(), 0);
        let (client, conn) = config
            .connect_raw(socket, NoTls)
            .await
            .map_err(|e| connect_error(info, Box::new(e)))?;
        let task = tokio::spawn(async move { record(drive(conn, notice_tx).await) });
        (client, task, None)
    } else {
        config.ssl_mode(if mode == SslMode::Prefer {
            PgSslMode::Prefer
        } else {
            PgSslMode::Require
        });
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(info, mode)?);
        let handshake =
            <_ as MakeTlsConnect<Gated<RawSocket>>>::make_tls_connect(&mut tls.clone(), &info.host)
                .map_err(|e| {
                    connect_error(info, BeforeServer::boxed("error performing TLS handshake", e))
                })?;
        // The server's first byte answers the TLS request; the messages follow.
        let socket = Gated::new(socket, gate.clone(), 1);
        let (client, conn) = config
            .connect_raw(socket, GatedTls { tls: handshake, gate: gate.clone() })
            .await
            .map_err(|e| connect_error(info, Box::new(e)))?;
        let task = tokio::spawn(async move { record(drive(conn, notice_tx).await) });
        (client, task, Some(tls))
    };
    pin(&client, info, purpose).await?;
    Ok(Session {
        client,
        info: info.clone(),
        conn_error,
        ended,
        cancel_tls,
        port,
        hostaddr,
        gate,
        task,
        notices,
    })
}

/// Runs a connection to its end, as awaiting it does, handing each notice to
/// `notices` when the session keeps them.
async fn drive<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    notices: Option<tokio::sync::mpsc::UnboundedSender<DbError>>,
) -> std::result::Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            None => return Ok(()),
            Some(Err(e)) => return Err(e),
            Some(Ok(tokio_postgres::AsyncMessage::Notice(n))) => {
                if let Some(tx) = &notices {
                    let _ = tx.send(n);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Pins a data session's settings again, after SQL that may have changed
/// them (a `schema.sql` sets its own `search_path` and more).
///
/// # Errors
/// Server errors.
pub async fn repin(session: &Session) -> Result<()> {
    pin(&session.client, &session.info, Purpose::Data).await
}

/// Sets what `purpose` pins (see [`Purpose`]).
async fn pin(client: &Client, info: &ConnInfo, purpose: Purpose) -> Result<()> {
    let mut pins = PINNED_SETTINGS.to_string();
    if purpose == Purpose::Data {
        pins.push_str("\nSET search_path = pg_catalog;");
        // A large table's sequential scan may otherwise start where another
        // scan of it is (runtime-config-compatible.html, synchronize_seqscans),
        // so the same rows could come out rotated: a table read again (a
        // worker's lost session retried) must give the same bytes. pg_dump
        // turns it off for the same reason.
        pins.push_str("\nSET synchronize_seqscans = off;");
    }
    traced(info, &pins, client.batch_execute(&pins))
        .await
        .map_err(|e| Error::db(format!("cannot set session settings on {info}"), e))
}

/// What failed before the server answered: opening the socket, setting up TLS.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct BeforeServer {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BeforeServer {
    fn boxed(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(BeforeServer { what, source: source.into() })
    }
}

fn connect_error(info: &ConnInfo, e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    let mut hint = connect_hint(info, e.as_ref());
    if let Some(b) = &info.ssh {
        hint = format!("{hint} (through the SSH tunnel via {b})");
        if let Some(said) = super::tunnel::stderr_of(info) {
            hint = format!("{hint}; ssh said: {said}");
        }
    }
    Error::Connect { conn: info.to_string(), source: e, hint: Some(hint) }
}

fn connect_hint(info: &ConnInfo, e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(code) =
        e.downcast_ref::<tokio_postgres::Error>().and_then(tokio_postgres::Error::code)
    {
        return match code.code() {
            "28P01" => {
                "check the password (the URL, PGPASSWORD or the password file ~/.pgpass)".into()
            }
            "28000" => format!(
                "the server's pg_hba.conf rejected user \"{}\"; check the user name and the server's access rules",
                info.user
            ),
            "3D000" => format!(
                "database \"{}\" does not exist; check the database name (dbname, PGDATABASE)",
                info.dbname
            ),
            "53300" => "the server has too many connections; lower -j or retry later".into(),
            "57P03" => "the server is starting up or shutting down; retry in a moment".into(),
            _ => "check the connection parameters".into(),
        };
    }
    let chain = error_chain_text(e);
    if chain.contains("password missing") {
        return "the server asks for a password: set PGPASSWORD or add it to ~/.pgpass (chmod 600)"
            .into();
    }
    if chain.contains("Connection refused") {
        return format!(
            "is the server running on \"{}\" and accepting connections on port {}?",
            info.host, info.port
        );
    }
    if chain.contains("No such file or directory") && info.is_unix_socket() {
        return format!(
            "no server socket at {}: is the server running locally on that port?",
            info.unix_socket_path(info.port).display()
        );
    }
    if chain.contains("lookup address") || chain.contains("Name or service not known") {
        return format!("cannot resolve host name \"{}\"; check the host", info.host);
    }
    if chain.contains("timed out") || chain.contains("timeout") {
        return format!(
            "no answer within {} s; check the host, port, firewall or security group (connect_timeout)",
            info.connect_timeout.as_secs()
        );
    }
    if chain.contains("TLS") || chain.contains("certificate") || chain.contains("tls") {
        return format!(
            "TLS failed with sslmode={}; check sslrootcert (the CA bundle) and that the host name matches the server certificate",
            info.effective_sslmode().as_str()
        );
    }
    if chain.contains("server does not support TLS") || chain.contains("does not support SSL") {
        return "the server does not accept TLS; use sslmode=disable or prefer".into();
    }
    "check the host, port and that the server is running".into()
}

fn error_chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Facts about the server a session is connected to, for manifests and the
/// "target is the source" check.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    pub server_version: String,
    pub server_version_num: i32,
    /// `pg_control_system().system_identifier`, when the role may read it.
    pub system_identifier: Option<String>,
    pub database: String,
}

/// Reads the server's version, system identifier and current database.
///
/// # Errors
/// A server error if the queries fail.
pub async fn server_info(session: &Session) -> Result<ServerInfo> {
    let row = session
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_database()::text",
            &[],
        )
        .await
        .map_err(|e| Error::db("cannot read the server version", e))?;
    // pg_control_system() may be denied to non-superusers (managed services);
    // the identifier is then unknown, not an error.
    let system_identifier = match session
        .query_one("SELECT system_identifier::text FROM pg_control_system()", &[])
        .await
    {
        Ok(r) => Some(r.get::<_, String>(0)),
        Err(_) => None,
    };
    Ok(ServerInfo {
        server_version: row.get(0),
        server_version_num: row.get(1),
        system_identifier,
        database: row.get(2),
    })
}

/// Whether `e` came from `session` having ended (the retryable case: its
/// backend terminated, SQLSTATE class 57P, or the connection broken, class 08
/// or a failed socket), not from the statement, the files or a signal. A
/// terminated backend sends its FATAL (SQLSTATE 57P01) before it closes, so
/// the session's end is awaited a moment.
pub async fn is_session_lost(session: &Session, e: &Error) -> bool {
    let may_be = e.is_connection_failure() || e.sqlstate().is_some_and(|c| c.starts_with("57P"));
    may_be && tokio::time::timeout(Duration::from_secs(1), session.ended()).await.is_ok()
}
