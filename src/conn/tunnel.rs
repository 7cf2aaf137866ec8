//! SSH tunnels through a bastion, with the system's OpenSSH client: `ssh -N`
//! with a local forward, so `~/.ssh/config` (Host aliases, ProxyJump), the
//! agent and `known_hosts` work as they do for the user's own `ssh`.
//!
//! A tunnel opens on the first session that needs it and is shared by every
//! later session to the same database through the same bastion; all close
//! when pgbarge exits ([`close_all`], called by `main`) or when the process
//! dies (the ssh child gets SIGTERM from the kernel, `PR_SET_PDEATHSIG`).
//! ssh runs in its own process group so a Ctrl-C in the terminal reaches
//! only pgbarge, which still needs the tunnel to cancel its statements on
//! the server before it exits.
//!
//! The forward listens on a free loopback port rather than a unix socket:
//! the session then connects there as libpq's `hostaddr`, while `host` stays
//! the database's real name, so `sslmode=verify-full` checks the certificate
//! against it, and cancel requests and `pg_dump` reach the server the same
//! way. Host-key checking is never turned off (`BatchMode=yes` only stops
//! ssh from asking questions nobody can answer).
//!
//! This module must not print: failures come back as errors holding ssh's
//! own words.

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::conninfo::ConnInfo;
use crate::error::{Error, Result};

/// The variable naming the ssh command to run instead of `ssh`, split on
/// whitespace (like `GIT_SSH_COMMAND`): `ssh -F ~/work/ssh_config`.
pub const SSH_COMMAND_VAR: &str = "PGBARGE_SSH_COMMAND";

/// How many times a tunnel is tried with a new local port when another
/// process took the one chosen between choosing and binding it.
const PORT_ATTEMPTS: usize = 3;

/// A bastion: `[USER@]HOST[:PORT]` (HOST may be a `Host` alias of
/// `~/.ssh/config`), and the identity file to offer, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bastion {
    /// `USER@HOST` or `HOST`, as ssh takes its destination.
    pub destination: String,
    pub port: Option<u16>,
    pub key: Option<PathBuf>,
}

impl Bastion {
    /// Parses `[USER@]HOST[:PORT]` (an IPv6 address in brackets) and the
    /// key file (`~/` is the home folder).
    ///
    /// # Errors
    /// A usage error for an empty host or a bad port.
    pub fn parse(spec: &str, key: Option<&str>) -> Result<Bastion> {
        let spec = spec.trim();
        let bad = |why: &str| {
            Error::usage_hint(
                format!("invalid SSH bastion \"{spec}\": {why}"),
                "give it as [USER@]HOST[:PORT], HOST a name, an address or a Host alias of ~/.ssh/config",
            )
        };
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u), r),
            Some(_) => return Err(bad("empty user")),
            None => (None, spec),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or_else(|| bad("text after ']'"))?)),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(bad("no valid host"));
        }
        let port = match port {
            Some(p) => {
                Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"))?)
            }
            None => None,
        };
        let destination = match user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_string(),
        };
        Ok(Bastion { destination, port, key: key.map(expand_home) })
    }
}

impl fmt::Display for Bastion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.destination),
            None => write!(f, "{}", self.destination),
        }
    }
}

/// `~/x` as `$HOME/x`; other paths as given.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// One running `ssh -N -L`.
struct Tunnel {
    bastion: Bastion,
    /// `host:port` of the database, as the bastion reaches it.
    remote: String,
    local: SocketAddr,
    child: Mutex<Child>,
    /// What ssh wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
}

impl Tunnel {
    /// ssh's exit, if it has ended: its status and its last words.
    fn ended(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => Some(describe_exit(status, &self.stderr_text())),
            _ => None,
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).trim().to_string()
    }

    /// Ends ssh's process group and reaps ssh.
    fn close(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(None) = child.try_wait() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: killpg has no memory preconditions; ssh leads its own group.
            unsafe {
                libc::killpg(pid, libc::SIGTERM);
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.close();
    }
}

fn describe_exit(status: std::process::ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("ssh exited with status {c}"),
        (None, Some(s)) => format!("ssh was killed by signal {s}"),
        _ => "ssh ended".to_string(),
    };
    if stderr.is_empty() { how } else { format!("{how}: {}", last_lines(stderr)) }
}

/// The last few lines of ssh's stderr, joined (the reason is at the end).
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// The open tunnels, keyed by bastion and database address.
static TUNNELS: LazyLock<Mutex<Vec<Arc<Tunnel>>>> = LazyLock::new(|| Mutex::new(Vec::new()));
/// Serializes opening, so concurrent workers share one tunnel.
static OPENING: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

fn remote_of(info: &ConnInfo) -> String {
    // ssh's forward syntax wants an IPv6 address in brackets.
    if info.host.contains(':') {
        format!("[{}]:{}", info.host, info.port)
    } else {
        format!("{}:{}", info.host, info.port)
    }
}

fn find(bastion: &Bastion, remote: &str) -> Option<Arc<Tunnel>> {
    let tunnels = TUNNELS.lock().unwrap_or_else(|p| p.into_inner());
    tunnels.iter().find(|t| t.bastion == *bastion && t.remote == remote).cloned()
}

/// Where a session to `info` connects: the local end of its tunnel (opened
/// now if it is not yet), or `None` when `info` names no bastion.
///
/// # Errors
/// A usage error for a unix-socket host; a runtime error (exit 3) naming the
/// bastion, with ssh's own message, when ssh is missing, the host key is
/// unknown, the key is refused, the forward is refused or the tunnel has
/// ended.
pub async fn endpoint(info: &ConnInfo) -> Result<Option<SocketAddr>> {
    let Some(bastion) = &info.ssh else { return Ok(None) };
    if info.host.starts_with('/') {
        return Err(Error::usage_hint(
            format!(
                "--ssh needs the database's host name, not the socket folder \"{}\"",
                info.host
            ),
            "give host=NAME as the bastion reaches the database (the RDS endpoint, 10.0.1.5)",
        ));
    }
    let remote = remote_of(info);
    let _opening = OPENING.lock().await;
    if let Some(t) = find(bastion, &remote) {
        if let Some(why) = t.ended() {
            return Err(lost_error(&t, &why));
        }
        return Ok(Some(t.local));
    }
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        match open(bastion, &remote, info.connect_timeout).await {
            Ok(t) => {
                let local = t.local;
                TUNNELS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::new(t));
                return Ok(Some(local));
            }
            Err(Opened::PortTaken(e)) => last = Some(e),
            Err(Opened::Failed(e)) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::runtime("cannot open the SSH tunnel")))
}

fn lost_error(t: &Tunnel, why: &str) -> Error {
    Error::runtime_hint(
        format!(
            "connection lost: the SSH tunnel through {} to {} ended ({why})",
            t.bastion, t.remote
        ),
        "check the bastion and the network, then run again",
    )
}

/// Why a tunnel did not open: a port another process took (worth another
/// try), or anything else.
enum Opened {
    PortTaken(Error),
    Failed(Error),
}

/// The ssh program and its leading arguments: `PGBARGE_SSH_COMMAND` or `ssh`.
fn ssh_command() -> (String, Vec<String>) {
    let text = std::env::var(SSH_COMMAND_VAR).ok().filter(|s| !s.trim().is_empty());
    // No shell splits it: `~/` is expanded here, as a shell would.
    let mut words: Vec<String> = match text {
        Some(t) => {
            t.split_whitespace()
                .map(|w| {
                    if w.starts_with("~/") {
                        expand_home(w).display().to_string()
                    } else {
                        w.into()
                    }
                })
                .collect()
        }
        None => vec!["ssh".into()],
    };
    let program = words.remove(0);
    (program, words)
}

async fn open(
    bastion: &Bastion,
    remote: &str,
    timeout: Duration,
) -> std::result::Result<Tunnel, Opened> {
    let local = free_loopback_port().map_err(|e| {
        Opened::Failed(Error::runtime(format!(
            "cannot choose a local port for the SSH tunnel: {e}"
        )))
    })?;
    let (program, leading) = ssh_command();
    let mut cmd = Command::new(&program);
    cmd.args(&leading)
        .arg("-N")
        .args(["-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes"])
        // A dead bastion or network is noticed within a minute, not hours.
        .args(["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"])
        .arg("-L")
        .arg(format!("{}:{}:{remote}", local.ip(), local.port()));
    if let Some(p) = bastion.port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(k) = &bastion.key {
        cmd.arg("-i").arg(k);
    }
    cmd.arg("--").arg(&bastion.destination);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // If pgbarge dies without closing the tunnel (SIGKILL), so does ssh.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let what = format!("cannot open the SSH tunnel through {bastion} to {remote}");
    let mut child = cmd.spawn().map_err(|e| {
        Opened::Failed(if e.kind() == std::io::ErrorKind::NotFound {
            Error::runtime_hint(
                format!("{what}: ssh not found (\"{program}\")"),
                "install the OpenSSH client (Debian: apt-get install openssh-client)",
            )
        } else {
            Error::runtime(format!("{what}: cannot run \"{program}\": {e}"))
        })
    })?;
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut pipe) = child.stderr.take() {
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let tunnel = Tunnel {
        bastion: bastion.clone(),
        remote: remote.to_string(),
        local,
        child: Mutex::new(child),
        stderr,
    };
    match wait_usable(&tunnel, timeout).await {
        Ok(()) => Ok(tunnel),
        Err(why) => {
            tunnel.close();
            // Let the reader thread take ssh's last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let text = tunnel.stderr_text();
            let said = if text.is_empty() {
                why.clone()
            } else {
                format!("{why}\n  ssh: {}", last_lines(&text))
            };
            let err =
                Error::runtime_hint(format!("{what}: {said}"), ssh_hint(&text, bastion, remote));
            if text.contains("Address already in use") {
                Err(Opened::PortTaken(err))
            } else {
                Err(Opened::Failed(err))
            }
        }
    }
}

/// A loopback port nobody listens on now.
fn free_loopback_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// Waits until the forward reaches a PostgreSQL server: a connection to the
/// local end answers an SSLRequest with `S` or `N`. Only then has ssh
/// logged in, bound the port, and the bastion opened the forward.
async fn wait_usable(t: &Tunnel, timeout: Duration) -> std::result::Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(why) = t.ended() {
            return Err(why_before_ready(&why));
        }
        if Instant::now() > deadline {
            return Err(format!("the tunnel was not usable within {} s", timeout.as_secs()));
        }
        if let Ok(mut s) = tokio::net::TcpStream::connect(t.local).await {
            // SSLRequest: length 8, code 80877103.
            let probe = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
            let mut answer = [0u8; 1];
            let reply =
                tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), async {
                    s.write_all(&probe).await?;
                    s.read(&mut answer).await
                })
                .await;
            match reply {
                Ok(Ok(1)) if matches!(answer[0], b'S' | b'N') => return Ok(()),
                Ok(Ok(1)) => {
                    return Err(format!("{} does not answer as a PostgreSQL server", t.remote));
                }
                // ssh accepted, then closed: the bastion refused the forward.
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(format!(
                        "the bastion did not open the forward to {} (refused or unreachable)",
                        t.remote
                    ));
                }
                Err(_) => return Err(format!("no answer from {} through the tunnel", t.remote)),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn why_before_ready(why: &str) -> String {
    match why.split_once(": ") {
        Some((how, _)) => how.to_string(),
        None => why.to_string(),
    }
}

/// What to do, from ssh's words.
fn ssh_hint(stderr: &str, bastion: &Bastion, remote: &str) -> String {
    let host = bastion.destination.rsplit('@').next().unwrap_or(&bastion.destination);
    if stderr.contains("Host key verification failed")
        || stderr.contains("host key is not known")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        format!(
            "the bastion's host key is unknown or changed: connect once with `ssh {host}`, check the fingerprint, and let ssh add it to ~/.ssh/known_hosts"
        )
    } else if stderr.contains("Permission denied") {
        "the bastion refused the key: check --ssh-key (ssh_key in a plan), the user name, and that the key is in the agent or ~/.ssh/config".into()
    } else if stderr.contains("Could not resolve hostname") {
        format!(
            "cannot resolve the bastion \"{host}\": check the name or its Host entry in ~/.ssh/config"
        )
    } else if stderr.contains("open failed") || stderr.contains("forwarding") {
        format!(
            "the bastion refused to forward to {remote}: check that it may reach the database (AllowTcpForwarding, security groups) and the host and port"
        )
    } else if stderr.contains("Connection refused") || stderr.contains("timed out") {
        format!("the bastion \"{host}\" is unreachable: check its address, port and the network")
    } else {
        format!("check that `ssh {host}` works from this machine")
    }
}

/// When a tunnel ended while pgbarge ran, `err` is a connection loss through
/// it: the error says so, naming the bastion. Other errors come back as
/// they are.
pub fn explain(err: Error) -> Error {
    if err.class() != crate::error::Class::Runtime {
        return err;
    }
    let tunnels = TUNNELS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if tunnels.is_empty() {
        return err;
    }
    // A killed ssh closes its sockets a moment before it can be reaped, so
    // the session may have seen the end first.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        if let Some((t, why)) = tunnels.iter().find_map(|t| t.ended().map(|w| (t, w))) {
            return err.context(format!(
                "connection lost: the SSH tunnel through {} to {} ended ({why})",
                t.bastion, t.remote
            ));
        }
        if Instant::now() > deadline {
            return err;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What ssh said, for a connection that failed through a tunnel.
pub fn stderr_of(info: &ConnInfo) -> Option<String> {
    let bastion = info.ssh.as_ref()?;
    let t = find(bastion, &remote_of(info))?;
    let text = t.stderr_text();
    (!text.is_empty()).then(|| last_lines(&text))
}

/// Closes every tunnel and reaps its ssh. `main` calls this before exiting,
/// since `std::process::exit` runs no destructors.
pub fn close_all() {
    let tunnels = std::mem::take(&mut *TUNNELS.lock().unwrap_or_else(|p| p.into_inner()));
    for t in tunnels {
        t.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bastions_parse_as_ssh_destinations() {
        let b = Bastion::parse("ec2-user@bastion.example.com", None).unwrap();
        assert_eq!((b.destination.as_str(), b.port), ("ec2-user@bastion.example.com", None));
        let b = Bastion::parse("jump:2222", Some("/k/id")).unwrap();
        assert_eq!((b.destination.as_str(), b.port), ("jump", Some(2222)));
        assert_eq!(b.key.as_deref(), Some(Path::new("/k/id")));
        assert_eq!(b.to_string(), "jump:2222");
        let b = Bastion::parse("me@[::1]:22", None).unwrap();
        assert_eq!((b.destination.as_str(), b.port), ("me@::1", Some(22)));
        for bad in ["", "@host", "host:0", "host:x", "-oProxyCommand=x", "[::1"] {
            assert!(Bastion::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn ssh_stderr_gives_the_hint() {
        let b = Bastion::parse("u@bastion", None).unwrap();
        assert!(ssh_hint("Host key verification failed.", &b, "db:5432").contains("known_hosts"));
        assert!(
            ssh_hint("u@bastion: Permission denied (publickey).", &b, "db:5432")
                .contains("--ssh-key")
        );
        assert!(
            ssh_hint(
                "channel 2: open failed: administratively prohibited: open failed",
                &b,
                "db:5432"
            )
            .contains("forward to db:5432")
        );
        assert_eq!(last_lines("a\nb\n\nc\nd\n"), "b; c; d");
    }
}
