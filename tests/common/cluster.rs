//! One throwaway PostgreSQL cluster per test binary.
//!
//! initdb + pg_ctl in a short temp folder, unix socket plus TCP on 127.0.0.1 at
//! a free port, `fsync=off`, TLS on with a CA and server certificate made here,
//! scram password authentication for the role `pwuser`, trust for the rest.
//! When running as root the server runs as the `postgres` OS user via `runuser`.
//! A watcher process stops the cluster and removes its folder as soon as the
//! test process is gone, even if a test panicked or the process was killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The role with a password, for password, .pgpass and redaction tests.
pub const PW_USER: &str = "pwuser";
/// Its password. Tests assert it never appears in any output.
pub const PW_PASSWORD: &str = "Xq7-barge-S3cret";

pub struct Cluster {
    /// Holds the socket, the data folder, the certificates.
    pub dir: PathBuf,
    pub port: u16,
    pub bindir: PathBuf,
    pub ca_cert: PathBuf,
    pub other_ca_cert: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds the server binaries: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() && p.join("pg_ctl").exists() {
            return p;
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server not installed: run scripts/test.sh, which installs it")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().expect("no /usr/lib/postgresql/*/bin/initdb found").1
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Runs a server binary as the postgres OS user when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    if is_root() {
        run_ok(Command::new("chown").arg("-R").arg("postgres:postgres").arg(path), "chown");
    }
}

fn make_certs(dir: &Path) {
    let sh = format!(
        r#"set -e
cd '{d}'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
  -keyout ca.key -out ca.crt -subj "/CN=pgbarge test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
  -keyout other-ca.key -out other-ca.crt -subj "/CN=some other CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
  -out server.crt -extfile server.ext 2>/dev/null
chmod 600 server.key
"#,
        d = dir.display()
    );
    run_ok(Command::new("sh").arg("-c").arg(sh), "making test certificates");
}

impl Cluster {
    fn start() -> Cluster {
        let bindir = find_bindir();
        // Short path: a unix socket path may not exceed 107 bytes.
        let dir = PathBuf::from(format!("/tmp/pgbt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create cluster dir");
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).expect("create cert dir");
        make_certs(&certs);
        chown_postgres(&dir);
        let data = dir.join("data");
        let port = free_port();

        run_ok(
            as_server_user(&bindir.join("initdb")).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\n\
             fsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 200\n\
             ssl = on\nssl_cert_file = '{c}/server.crt'\nssl_key_file = '{c}/server.key'\n\
             max_wal_size = '1GB'\nlog_min_messages = warning\n\
             log_line_prefix = '%m [%p] db=%d '\n",
            d = dir.display(),
            c = certs.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all {PW_USER} scram-sha-256\nlocal all all trust\n\
                 host all {PW_USER} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
            ),
        )
        .expect("write pg_hba.conf");
        chown_postgres(&dir);

        // The watcher: stops the server and removes the folder once this process is gone.
        let pg_ctl = bindir.join("pg_ctl");
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- '{}' -D '{}' stop -m immediate",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!("'{}' -D '{}' stop -m immediate", pg_ctl.display(), data.display())
        };
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{d}'",
            pid = std::process::id(),
            d = dir.display()
        );
        // Never waited for on purpose: the watcher must outlive this process.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(watcher)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cluster watcher");

        run_ok(
            as_server_user(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "start"])
                .stdout(Stdio::null()),
            "pg_ctl start",
        );
        let cluster = Cluster {
            ca_cert: certs.join("ca.crt"),
            other_ca_cert: certs.join("other-ca.crt"),
            dir,
            port,
            bindir,
        };
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {PW_USER} LOGIN CREATEDB PASSWORD '{PW_PASSWORD}'"),
        );
        cluster
    }

    /// A keyword connection string for `db` over the unix socket as `postgres`.
    pub fn conn(&self, db: &str) -> String {
        format!("host={} port={} user=postgres dbname={db}", self.dir.display(), self.port)
    }

    /// Creates a fresh database named after the test, and returns its name.
    pub fn create_db(&self, test: &str) -> String {
        let n = DB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "t{n}_{}",
            test.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        );
        let name: String = name.chars().take(60).collect();
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// Runs SQL through psql as `postgres` and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_cmd(db).arg("-c").arg(sql).output().expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8").trim_end_matches('\n').to_string()
    }

    /// Loads an SQL file through psql as `postgres`.
    pub fn psql_file(&self, db: &str, file: &Path) {
        let out = self.psql_cmd(db).arg("-f").arg(file).output().expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// psql with the connection set and output unaligned, tuples only.
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(self.bindir.join("psql"));
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db])
            .env_remove("PGPASSWORD")
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .stdin(Stdio::null());
        c
    }

    /// pg_dump with the connection set.
    pub fn pg_dump_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(self.bindir.join("pg_dump"));
        c.arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db])
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null());
        c
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}
