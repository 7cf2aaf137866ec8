//! SSH tunnels through a bastion (`--ssh`, `--source-ssh`, `--target-ssh`):
//! backup, copy and restore through a real `sshd` started here on 127.0.0.1,
//! `verify-full` checking the database's real name through the tunnel, one
//! clear error (exit 3) per ssh failure, and no ssh process left behind.
//!
//! Each test starts its own sshd as the current user, with host and user
//! keys made here, and points pgbarge's ssh at a client config written here
//! (`PGBARGE_SSH_COMMAND=ssh -F ...`): the real `~/.ssh` is never read or
//! touched (ssh finds `~` through the password database, not `$HOME`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Run, cluster, pgbarge, pgbarge_cmd};

/// The `Host` alias of the test bastion in its client config.
const ALIAS: &str = "testbastion";

/// A throwaway sshd and the client config that reaches it.
struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path),
        "ssh-keygen",
    );
}

fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.exists(), "sshd missing: run scripts/install-deps.sh (openssh-server)");
        let dir = tempfile::Builder::new().prefix("pgbssh").tempdir_in("/tmp").unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        keygen(&d.join("other_key"));
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding yes\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        // sshd started by root wants its privilege separation folder.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("{ALIAS} {host_pub}")).unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
                 IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
                 HostKeyAlias {ALIAS}\n  UserKnownHostsFile {d}/known_hosts\n  \
                 GlobalKnownHostsFile /dev/null\n",
                user = user_name(),
                d = d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let s = Sshd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(s.path("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What makes pgbarge's ssh use this bastion's config.
    fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.path("ssh_config").display())
    }

    fn env(&self) -> (String, String) {
        ("PGBARGE_SSH_COMMAND".into(), self.ssh_command())
    }

    /// pgbarge with `args`, its ssh pointed at this bastion.
    fn pgbarge(&self, args: &[&str]) -> Run {
        let (k, v) = self.env();
        pgbarge(args, &[(&k, &v)])
    }

    /// The pids of ssh processes this test's pgbarge started (found by the
    /// config path, unique to the test).
    fn ssh_pids(&self) -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-f", "--"])
            .arg(self.path("ssh_config"))
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
    }

    fn expect_no_ssh_left(&self) {
        // Reaped before pgbarge exits; a moment for the kernel's bookkeeping.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.ssh_pids().is_empty() {
            assert!(Instant::now() < deadline, "ssh left running: {:?}", self.ssh_pids());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A TCP connection string to `db` by the name in the server certificate,
/// verified in full.
fn tls_conn(db: &str) -> String {
    let c = cluster();
    format!(
        "host=localhost port={} user=postgres dbname={db} sslmode=verify-full sslrootcert={}",
        c.port,
        c.ca_cert.display()
    )
}

const TABLE: &str = "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)";

fn source_db(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, TABLE);
    c.psql(&db, "INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 500) g");
    db
}

fn count(db: &str) -> String {
    cluster().psql(db, "SELECT count(*) FROM item")
}

#[test]
fn backup_restore_and_copy_through_the_tunnel_with_verify_full() {
    let c = cluster();
    let sshd = Sshd::start();
    let src = source_db("ssh_src");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    let dir = dir.to_str().unwrap();

    // --schema runs pg_dump through the tunnel too.
    let r = sshd.pgbarge(&["backup", "-d", &tls_conn(&src), "--ssh", ALIAS, "-o", dir, "--schema"]);
    r.expect_code(0);
    sshd.expect_no_ssh_left();

    let restored = c.create_db("ssh_restored");
    let r = sshd.pgbarge(&["restore", dir, "-d", &tls_conn(&restored), "--ssh", ALIAS, "--schema"]);
    r.expect_code(0);
    assert_eq!(count(&restored), "500");
    sshd.expect_no_ssh_left();

    // Both sides through the bastion, one tunnel each.
    let copied = c.create_db("ssh_copied");
    c.psql(&copied, TABLE);
    let r = sshd.pgbarge(&[
        "copy",
        "--source",
        &tls_conn(&src),
        "--source-ssh",
        ALIAS,
        "--target",
        &tls_conn(&copied),
        "--target-ssh",
        ALIAS,
        "--verify",
    ]);
    r.expect_code(0);
    assert_eq!(count(&copied), "500");
    assert_eq!(
        c.psql(&copied, "SELECT md5(string_agg(name, ',' ORDER BY id)) FROM item"),
        c.psql(&src, "SELECT md5(string_agg(name, ',' ORDER BY id)) FROM item")
    );
    sshd.expect_no_ssh_left();
}

#[test]
fn verify_full_checks_the_real_host_name_not_the_tunnel() {
    let c = cluster();
    let sshd = Sshd::start();
    let db = source_db("ssh_name");
    // The certificate names localhost only: 127.0.0.1 as the host must fail,
    // though the tunnel's end is 127.0.0.1 in both cases.
    let wrong = format!(
        "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=verify-full sslrootcert={}",
        c.port,
        c.ca_cert.display()
    );
    let r = sshd.pgbarge(&["list", "-d", &wrong, "--ssh", ALIAS]);
    r.expect_code(3);
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    assert!(r.stderr.contains(ALIAS), "the bastion is named: {}", r.stderr);
    let r = sshd.pgbarge(&["list", "-d", &tls_conn(&db), "--ssh", ALIAS]);
    r.expect_code(0);
    assert!(r.stdout.contains("public.item"), "{}", r.stdout);
    sshd.expect_no_ssh_left();
}

#[test]
fn an_unknown_host_key_is_refused_with_ssh_words() {
    let sshd = Sshd::start();
    let db = source_db("ssh_hostkey");
    std::fs::write(sshd.path("known_hosts"), "").unwrap();
    let r = sshd.pgbarge(&["list", "-d", &tls_conn(&db), "--ssh", ALIAS]);
    r.expect_code(3);
    assert!(r.stderr.contains("cannot open the SSH tunnel through testbastion"), "{}", r.stderr);
    assert!(r.stderr.contains("Host key verification failed"), "{}", r.stderr);
    assert!(r.stderr.contains("known_hosts"), "hint: {}", r.stderr);
    sshd.expect_no_ssh_left();
}

#[test]
fn a_refused_key_a_refused_forward_and_a_missing_ssh_are_named() {
    let sshd = Sshd::start();
    let db = source_db("ssh_refused");

    // The bastion takes only the other key: the config's is refused...
    std::fs::copy(sshd.path("other_key.pub"), sshd.path("authorized_keys")).unwrap();
    let r = sshd.pgbarge(&["list", "-d", &tls_conn(&db), "--ssh", ALIAS]);
    r.expect_code(3);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(r.stderr.contains("refused the key"), "hint: {}", r.stderr);
    // ...and --ssh-key offers the one it takes.
    let other = sshd.path("other_key");
    let key = other.to_str().unwrap();
    let r = sshd.pgbarge(&["list", "-d", &tls_conn(&db), "--ssh", ALIAS, "--ssh-key", key]);
    r.expect_code(0);
    std::fs::copy(sshd.path("user_key.pub"), sshd.path("authorized_keys")).unwrap();

    // Nothing listens where the bastion is asked to forward.
    let nowhere = format!("host=localhost port={} user=postgres dbname={db}", free_port());
    let r = sshd.pgbarge(&["list", "-d", &nowhere, "--ssh", ALIAS]);
    r.expect_code(3);
    assert!(r.stderr.contains("did not open the forward"), "{}", r.stderr);
    assert!(r.stderr.contains("testbastion"), "{}", r.stderr);

    let r = pgbarge(
        &["list", "-d", &tls_conn(&db), "--ssh", ALIAS],
        &[("PGBARGE_SSH_COMMAND", "/nonexistent/ssh")],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("ssh not found"), "{}", r.stderr);
    assert!(r.stderr.contains("openssh-client"), "{}", r.stderr);
    sshd.expect_no_ssh_left();
}

/// A copy through the bastion into a target whose rows load slowly, started
/// and waited for until rows are loading; returns pgbarge and the target.
fn slow_copy_started(sshd: &Sshd, test: &str) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let c = cluster();
    let src = source_db(&format!("{test}_src"));
    let target = c.create_db(test);
    c.psql(&target, TABLE);
    // Each row takes a moment to load, so the copy is still running when
    // the test acts.
    c.psql(
        &target,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END$$; \
         CREATE TRIGGER slow BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION slow()",
    );
    let (k, v) = sshd.env();
    let child = pgbarge_cmd()
        .args(["copy", "--source", &c.conn(&src), "--target", &tls_conn(&target)])
        .args(["--target-ssh", ALIAS])
        .env(k, v)
        // Its own process group, as a shell's foreground job: Ctrl-C goes
        // to the whole group.
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgbarge");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = c.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{target}' AND query LIKE 'COPY%'"
            ),
        );
        if n != "0" {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never started loading");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    (child, target)
}

#[test]
fn ssh_killed_mid_copy_fails_the_copy_and_leaves_the_target_unchanged() {
    let sshd = Sshd::start();
    let (child, target) = slow_copy_started(&sshd, "ssh_kill");
    let pids = sshd.ssh_pids();
    assert_eq!(pids.len(), 1, "one ssh for the target: {pids:?}");
    run_ok(Command::new("kill").arg("-KILL").arg(&pids[0]), "kill ssh");

    let out = child.wait_with_output().expect("wait for pgbarge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("connection lost"), "{stderr}");
    assert!(stderr.contains("SSH tunnel through testbastion"), "{stderr}");
    assert_eq!(count(&target), "0", "the target is unchanged");
    sshd.expect_no_ssh_left();
}

#[test]
fn a_plan_connection_names_its_bastion_and_key() {
    let c = cluster();
    let sshd = Sshd::start();
    let db = source_db("ssh_plan");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("add.sql"), "ALTER TABLE item ADD COLUMN note text;\n").unwrap();
    std::fs::write(
        tmp.path().join("plan.toml"),
        format!(
            "name = \"through the bastion\"\nlog_dir = \"{work}/runs\"\n\n[connections]\n\
             target = {{ env = \"SSH_PLAN_TARGET\", ssh = \"{ALIAS}\", ssh_key = \"{key}\" }}\n\n\
             [[steps]]\nname = \"backup\"\nkind = \"backup\"\ndb = \"target\"\noutput = \"{work}/b\"\n\n\
             [[steps]]\nname = \"ddl\"\nkind = \"sql\"\ndb = \"target\"\nfiles = [\"add.sql\"]\n",
            work = tmp.path().display(),
            key = sshd.path("user_key").display()
        ),
    )
    .unwrap();
    let plan = tmp.path().join("plan.toml");
    let (k, v) = sshd.env();
    let conn = tls_conn(&db);
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[(&k, &v), ("SSH_PLAN_TARGET", &conn)]);
    r.expect_code(0);
    assert_eq!(
        c.psql(&db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"),
        "1"
    );
    sshd.expect_no_ssh_left();
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("runs")).unwrap().collect();
    let md = std::fs::read_to_string(runs[0].as_ref().unwrap().path().join("run.md")).unwrap();
    assert!(md.contains("(via ssh testbastion)"), "the log names the bastion: {md}");

    // A key without a bastion is refused before any step runs.
    let text = std::fs::read_to_string(&plan).unwrap().replace(&format!("ssh = \"{ALIAS}\", "), "");
    std::fs::write(&plan, text).unwrap();
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("SSH_PLAN_TARGET", &conn)]);
    r.expect_code(2);
    assert!(r.stderr.contains("ssh_key needs ssh"), "{}", r.stderr);
}

#[test]
fn ctrl_c_mid_copy_closes_the_tunnel() {
    let sshd = Sshd::start();
    let (child, target) = slow_copy_started(&sshd, "ssh_ctrlc");
    assert_eq!(sshd.ssh_pids().len(), 1);
    // Ctrl-C in a terminal: SIGINT to the foreground process group. ssh is
    // not in it, so the tunnel carries the cancel request before it closes.
    run_ok(Command::new("kill").args(["-INT", "--"]).arg(format!("-{}", child.id())), "kill -INT");
    let out = child.wait_with_output().expect("wait for pgbarge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("connection lost"), "the tunnel outlived the cancel: {stderr}");
    assert_eq!(count(&target), "0", "the target is unchanged");
    sshd.expect_no_ssh_left();
}

#[test]
fn pgbarge_killed_takes_its_ssh_along() {
    let sshd = Sshd::start();
    let (mut child, target) = slow_copy_started(&sshd, "ssh_sigkill");
    assert_eq!(sshd.ssh_pids().len(), 1);
    child.kill().expect("kill pgbarge");
    let _ = child.wait();
    sshd.expect_no_ssh_left();
    assert_eq!(count(&target), "0", "the target is unchanged");
}
