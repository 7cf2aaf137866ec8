//! Memory with very large rows (issue 14, point 5): every command that moves
//! table data keeps its peak RSS within 64 MiB plus 1.5 times the largest
//! row, measured on the real binary with rows of 100 MiB values, backup over
//! TLS too.

use std::process::Stdio;

use crate::common::{cluster, pgbarge_cmd};

const MIB: u64 = 1024 * 1024;
/// Each value's length; a row's CSV is this and a few bytes.
const VALUE: u64 = 100 * MIB;
const LIMIT_KIB: u64 = (64 * MIB + VALUE * 3 / 2) / 1024;

/// Runs pgbarge with `args`, expecting success, and returns its peak RSS in
/// KiB (the child's own `ru_maxrss`, from `wait4`).
// The child is reaped by wait4, which std's `wait` does not give the rusage of.
#[allow(clippy::zombie_processes)]
fn peak_rss_kib(args: &[&str]) -> u64 {
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = pgbarge_cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .expect("run pgbarge");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned, which nothing else reaps.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "pgbarge {args:?} failed ({status:#x}):\n{}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    usage.ru_maxrss as u64
}

fn contents(db: &str) -> String {
    cluster().psql(
        db,
        "SELECT string_agg(format('%s:%s:%s', id, length(v), md5(v)), ',' ORDER BY id) FROM t",
    )
}

#[test]
fn memory_stays_near_one_row_with_100_mib_values() {
    let c = cluster();
    let (src, tgt) = (c.create_db("large_rows_src"), c.create_db("large_rows_tgt"));
    let table = "CREATE TABLE t (id int PRIMARY KEY, v text)";
    c.psql(&src, table);
    c.psql(&tgt, table);
    // Not one repeated byte: md5 text, so the values look more like data.
    c.psql(
        &src,
        &format!(
            "INSERT INTO t SELECT i, repeat(md5(i::text), {}) FROM generate_series(1, 3) i",
            VALUE / 32
        ),
    );
    let expected = contents(&src);
    assert_eq!(expected.matches(&format!(":{VALUE}:")).count(), 3, "{expected}");

    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b");
    let backup = backup.to_str().unwrap();
    let (s, t) = (c.conn(&src), c.conn(&tgt));
    // Over TLS the rows are held back above the encryption, as in plain text.
    let tls_src = format!(
        "host=localhost port={} user=postgres dbname={src} sslmode=verify-full sslrootcert={}",
        c.port,
        c.ca_cert.display()
    );
    let tls_backup = dir.path().join("tls");
    let tls_backup = tls_backup.to_str().unwrap();
    let runs: [(&str, Vec<&str>); 6] = [
        ("backup", vec!["backup", "-q", "-d", &s, "-o", backup, "-t", "t"]),
        ("backup over TLS", vec!["backup", "-q", "-d", &tls_src, "-o", tls_backup, "-t", "t"]),
        ("verify -d --deep", vec!["verify", "-q", backup, "-d", &s, "--deep"]),
        ("copy", vec!["copy", "-q", "--source", &s, "--target", &t, "-t", "t"]),
        (
            "copy --verify=deep",
            vec!["copy", "-q", "--source", &s, "--target", &t, "-t", "t"]
                .into_iter()
                .chain(["--mode", "truncate", "--verify=deep"])
                .collect(),
        ),
        ("restore", vec!["restore", "-q", backup, "-d", &t, "-t", "t", "--mode", "truncate"]),
    ];
    let mut peaks = Vec::new();
    for (what, args) in &runs {
        let kib = peak_rss_kib(args);
        peaks.push(format!("{what}: {} MiB", kib / 1024));
        if what.starts_with("copy") || *what == "restore" {
            assert_eq!(contents(&tgt), expected, "after {what}");
        }
        assert!(kib <= LIMIT_KIB, "{what}: peak RSS {kib} KiB, over {LIMIT_KIB} KiB; {peaks:?}");
    }
    eprintln!("peak RSS with 100 MiB values: {}", peaks.join(", "));
}
