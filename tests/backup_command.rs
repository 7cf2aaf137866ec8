//! `pgbarge backup` against a real server: layout, interop with the zstd and
//! sha256sum tools and psql's COPY output, counts and fingerprints of awkward
//! tables, and failures that leave nothing that looks like a backup.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{cluster, db_with, pgbarge};
use pgbarge::format::digest::Fingerprinter;
use pgbarge::storage::manifest::Manifest;

fn out_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join(name);
    (t, p)
}

fn unzstd(path: &Path) -> Vec<u8> {
    let out = Command::new("zstd").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "zstd -dc {}", path.display());
    out.stdout
}

/// What psql prints for COPY (...) TO STDOUT (FORMAT csv, HEADER).
fn psql_copy(db: &str, select: &str) -> Vec<u8> {
    let c = cluster();
    let out = c
        .psql_cmd(db)
        .arg("-c")
        .arg(format!("COPY ({select}) TO STDOUT (FORMAT csv, HEADER)"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn fingerprint_of(csv: &[u8]) -> String {
    let mut s = pgbarge::format::csv::RecordScanner::new();
    let mut f = Fingerprinter::new();
    s.feed_with(csv, |p, e| f.piece(p, e));
    f.finish().sum
}

fn sha256sum_check(dir: &Path) {
    let out =
        Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&out.stdout));
}

fn leftovers(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return vec![];
    }
    walk(dir)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p.display().to_string());
        }
    }
    v
}

#[test]
fn erp_backup_is_interoperable_and_counted() {
    let c = cluster();
    let db = db_with("bk_erp", "erp/source.sql");
    let (_t, dir) = out_dir("erp");
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("backup complete"), "{}", r.stdout);
    sha256sum_check(&dir);
    let m = Manifest::read(&dir).unwrap();
    assert_eq!(m.tables.len(), 13);
    assert_eq!(m.source.database, db);
    assert!(m.source.system_identifier.is_some());
    let json = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(!json.contains("password"), "{json}");
    for (i, t) in m.tables.iter().enumerate() {
        assert!(t.file.starts_with(&format!("data/{:04}.public.", i + 1)), "{}", t.file);
        let bytes = unzstd(&dir.join(&t.file));
        let cols: Vec<String> = t.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let q = format!("SELECT {} FROM public.\"{}\"", cols.join(", "), t.name);
        let expected = psql_copy(&db, &q);
        assert_eq!(bytes, expected, "table {}", t.name);
        let count = c.psql(&db, &format!("SELECT count(*) FROM public.\"{}\"", t.name));
        assert_eq!(t.rows.to_string(), count, "table {}", t.name);
        assert_eq!(
            t.fingerprint.sum,
            fingerprint_of(&psql_copy(&db, &format!("{q} ORDER BY random()")))
        );
        assert_eq!(t.fingerprint.records, t.rows);
        let mode = std::fs::metadata(dir.join(&t.file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", t.file);
    }
    for d in [dir.clone(), dir.join("data")] {
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
    }
    for f in ["manifest.json", "SHA256SUMS"] {
        assert_eq!(std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Sequences are recorded: the identity of TimeEntry and the shared job number sequence.
    let te = m.tables.iter().find(|t| t.name == "TimeEntry").unwrap();
    assert!(te.sequences.iter().any(|s| s.owned && s.last_value == 30), "{:?}", te.sequences);
    let job = m.tables.iter().find(|t| t.name == "Job").unwrap();
    assert!(
        job.sequences.iter().any(|s| !s.owned && s.sequence.contains("job_number_seq")),
        "{:?}",
        job.sequences
    );
}

pub(crate) const AWKWARD: &str = r#"
CREATE TABLE texts (id int PRIMARY KEY, t text);
INSERT INTO texts VALUES (1, E'line1\nline2'), (2, E'cr\rhere'), (3, E'crlf\r\nthere'),
  (4, 'say "hi", ok'), (5, E'first\n\\.\nlast'), (6, ''), (7, NULL), (8, E'back\\slash'), (9, '\.');
CREATE TABLE always_null (x int);
INSERT INTO always_null SELECT NULL FROM generate_series(1, 5);
CREATE TABLE nocols ();
INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES;
CREATE TABLE parts (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE parts_b PARTITION OF parts FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO parts SELECT g, DATE '2024-06-01' + g * 2 FROM generate_series(1, 200) g;
CREATE TABLE "Case" (v int); CREATE TABLE "case" (v int);
INSERT INTO "Case" VALUES (1), (2); INSERT INTO "case" VALUES (3);
CREATE TABLE blob (id int, b bytea);
INSERT INTO blob SELECT 1, decode(repeat('ab', 1000000), 'hex');
CREATE TABLE "../../x" (v int); INSERT INTO "../../x" VALUES (1);
CREATE TABLE "a/b" (v int); INSERT INTO "a/b" VALUES (2);
CREATE TABLE "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" (v int);
CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED); INSERT INTO gen (a) VALUES (1), (2);
CREATE TABLE animal (id int); CREATE TABLE dog (bark text) INHERITS (animal);
INSERT INTO animal VALUES (1); INSERT INTO dog VALUES (2, 'woof');
"#;

#[test]
fn awkward_tables_get_exact_bytes_counts_and_fingerprints() {
    let c = cluster();
    let db = c.create_db("bk_awkward");
    c.psql(&db, AWKWARD);
    let (_t, dir) = out_dir("awk");
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "-j", "3"], &[]);
    r.expect_code(0);
    sha256sum_check(&dir);
    let m = Manifest::read(&dir).unwrap();
    let get = |n: &str| m.tables.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n}"));
    let expect = [
        ("texts", 9),
        ("always_null", 5),
        ("nocols", 3),
        ("parts", 200),
        ("Case", 2),
        ("case", 1),
        ("blob", 1),
        ("../../x", 1),
        ("a/b", 1),
        ("gen", 2),
        ("animal", 1),
        ("dog", 1),
    ];
    for (name, rows) in expect {
        let t = get(name);
        assert_eq!(t.rows, rows, "{name}");
        let bytes = unzstd(&dir.join(&t.file));
        // The file sits directly in data/, whatever the table's name.
        let placed = dir.join(&t.file).canonicalize().unwrap();
        assert_eq!(placed.parent(), Some(dir.join("data").canonicalize().unwrap().as_path()));
        let cols: Vec<String> =
            t.columns.iter().map(|c| pgbarge::ident::sql_ident(&c.name)).collect();
        let from = if name == "animal" {
            "ONLY public.animal".to_string()
        } else {
            pgbarge::ident::TableName::new("public", name).sql()
        };
        let q = format!("SELECT {} FROM {from}", cols.join(", "));
        assert_eq!(bytes, psql_copy(&db, &q), "{name}");
        assert_eq!(t.fingerprint.sum, fingerprint_of(&bytes), "{name}");
    }
    assert_eq!(get("gen").columns.len(), 1, "generated column left out");
    assert_eq!(get("parts").kind, pgbarge::catalog::TableKind::Partitioned);
    assert!(!m.tables.iter().any(|t| t.name.starts_with("parts_")));
    let names: Vec<&str> = m.tables.iter().map(|t| t.file.as_str()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    // The \. value survives in the file, quoted, where psql's \copy would stop.
    let texts = unzstd(&dir.join(&get("texts").file));
    assert!(String::from_utf8_lossy(&texts).contains("\"first\n\\.\nlast\""));
}

#[test]
fn non_empty_output_folder_is_refused_untouched() {
    let c = cluster();
    let db = c.create_db("bk_nonempty");
    c.psql(&db, "CREATE TABLE t (x int)");
    let (_t, dir) = out_dir("full");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    assert_eq!(leftovers(&dir), vec![dir.join("notes.txt").display().to_string()]);
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "--force"], &[]);
    r.expect_code(2);
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "keep me");
}

#[test]
fn force_replaces_a_previous_backup() {
    let c = cluster();
    let db = c.create_db("bk_force");
    c.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let (_t, dir) = out_dir("again");
    let d = dir.to_str().unwrap();
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", d, "-q"], &[]).expect_code(0);
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", d], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    c.psql(&db, "INSERT INTO t VALUES (2)");
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", d, "--force", "-q"], &[]);
    r.expect_code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "quiet: {}{}", r.stdout, r.stderr);
    assert_eq!(Manifest::read(&dir).unwrap().tables[0].rows, 2);
}

#[test]
fn schema_flag_writes_pg_dump_of_the_snapshot() {
    let c = cluster();
    let db = db_with("bk_schema", "erp/target.sql");
    let (_t, dir) = out_dir("schema");
    let r = pgbarge(
        &["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "--schema", "-t", "Role"],
        &[],
    );
    r.expect_code(0);
    let pre = std::fs::read_to_string(dir.join("schema-pre.sql")).unwrap();
    assert!(pre.contains("CREATE TABLE public.\"Role\""), "{pre}");
    assert!(!pre.contains("PRIMARY KEY"), "{pre}");
    let post = std::fs::read_to_string(dir.join("schema-post.sql")).unwrap();
    assert!(post.contains("PRIMARY KEY"), "{post}");
    let manifest = Manifest::read(&dir).unwrap();
    assert!(manifest.has_schema);
    assert_eq!(
        manifest.schema_pre_sha256.unwrap(),
        pgbarge::format::digest::sha256_hex(pre.as_bytes())
    );
    assert_eq!(
        manifest.schema_post_sha256.unwrap(),
        pgbarge::format::digest::sha256_hex(post.as_bytes())
    );
    for f in ["schema-pre.sql", "schema-post.sql"] {
        assert_eq!(std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

fn big_table_db(test: &str, rows: u32) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(
        &db,
        &format!(
            "CREATE TABLE small (x int); INSERT INTO small VALUES (1);
             CREATE TABLE big (id int, payload text);
             INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {rows}) g;"
        ),
    );
    db
}

/// Frames in a zstd file, counted with the library's frame parser.
fn zstd_frames(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let (mut rest, mut frames) = (&data[..], 0);
    while !rest.is_empty() {
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
        rest = &rest[n..];
        frames += 1;
    }
    frames
}

#[test]
fn a_file_of_several_zstd_frames_reads_back_as_one_stream() {
    let c = cluster();
    // About 12 MB of CSV: three 4 MiB frames.
    let db = big_table_db("bk_frames", 85_000);
    let (_t, dir) = out_dir("frames");
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "-t", "big"], &[])
        .expect_code(0);
    let m = Manifest::read(&dir).unwrap();
    let file = dir.join(&m.tables[0].file);
    assert_eq!(zstd_frames(&file), 3);
    let csv = unzstd(&file);
    assert!(csv.len() > 2 * pgbarge::format::zstd_frames::FRAME_INPUT, "{}", csv.len());
    assert_eq!(csv, psql_copy(&db, "SELECT id, payload FROM big"));
    assert_eq!(m.tables[0].rows, 85_000);
    sha256sum_check(&dir);
    pgbarge(&["verify", dir.to_str().unwrap(), "--deep", "-d", &c.conn(&db)], &[]).expect_code(0);
    let copy = c.create_db("bk_frames_restored");
    c.psql(&copy, "CREATE TABLE big (id int, payload text)");
    pgbarge(&["restore", dir.to_str().unwrap(), "-d", &c.conn(&copy)], &[]).expect_code(0);
    let rows =
        "SELECT count(*), md5(string_agg(format('%s,%s', id, payload), '|' ORDER BY id)) FROM big";
    assert_eq!(c.psql(&copy, rows), c.psql(&db, rows));

    // Cut after the first frame: what is left is a valid zstd stream, so only
    // the recorded size, sha256 and count can tell. They must.
    let data = std::fs::read(&file).unwrap();
    let first = zstd::zstd_safe::find_frame_compressed_size(&data).unwrap();
    std::fs::write(&file, &data[..first]).unwrap();
    assert!(zstd::decode_all(&data[..first]).is_ok());
    let r = pgbarge(&["verify", dir.to_str().unwrap()], &[]);
    r.expect_code(1);
    assert!(r.all().contains(&m.tables[0].file), "{}", r.all());
    let empty = c.create_db("bk_frames_cut");
    c.psql(&empty, "CREATE TABLE big (id int, payload text)");
    let r = pgbarge(&["restore", dir.to_str().unwrap(), "-d", &c.conn(&empty)], &[]);
    r.expect_code(1);
    // Refused before loading: the size is not the recorded one.
    assert!(r.all().contains(&format!("is {first} bytes, the manifest records")), "{}", r.all());
    assert!(r.all().contains("nothing was restored"), "{}", r.all());
    assert_eq!(c.psql(&empty, "SELECT count(*) FROM big"), "0");
}

/// Backs up `db` uncompressed under `ulimit -f kib` (1024-byte blocks):
/// the backup fails with exit 3 naming `table` and the limit, and leaves no
/// file and no folder.
fn fails_cleanly_at_the_file_size_limit(db: &str, kib: u32, table: &str, out: &str) {
    let (_t, dir) = out_dir(out);
    let script = format!(
        "ulimit -f {kib}; exec '{}' backup -d '{}' -o '{}' --compress none",
        env!("CARGO_BIN_EXE_pgbarge"),
        cluster().conn(db),
        dir.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(table), "{stderr}");
    assert!(stderr.contains("File too large") || stderr.contains("file size limit"), "{stderr}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert!(!dir.exists());
}

#[test]
fn file_size_limit_fails_cleanly() {
    // 200 kB, far less than the big table.
    let db = big_table_db("bk_fsize", 100_000);
    fails_cleanly_at_the_file_size_limit(&db, 200, "public.big", "limited");
}

/// A table smaller than one block is compressed and written by the worker
/// that read it, without a writer thread: a write failing there fails the
/// backup the same way, naming the table, and leaves nothing behind.
#[test]
fn a_small_table_written_by_its_worker_fails_cleanly_at_the_file_size_limit() {
    let db = cluster().create_db("bk_fsize_small");
    // About 40 kB of CSV: one block (256 KiB) holds it, the 8 kB limit does not.
    cluster().psql(
        &db,
        "CREATE TABLE small (id int PRIMARY KEY, v text);
         INSERT INTO small SELECT g, md5(g::text) FROM generate_series(1, 1000) g;",
    );
    fails_cleanly_at_the_file_size_limit(&db, 8, "public.small", "limited_small");
}

/// Sequence positions are read while the workers copy: a sequence the user
/// may not read fails the backup by name, stops the workers and leaves no
/// folder behind.
#[test]
fn a_sequence_the_user_may_not_read_fails_the_backup_beside_the_workers() {
    use crate::common::{PW_PASSWORD, PW_USER};
    let c = cluster();
    let db = c.create_db("bk_seq_priv");
    c.psql(
        &db,
        &format!(
            "CREATE TABLE p (id serial PRIMARY KEY, v text); CREATE TABLE q (id serial PRIMARY KEY);
             INSERT INTO p (v) SELECT repeat('x', 100) FROM generate_series(1, 20000);
             INSERT INTO q SELECT generate_series(1, 3);
             GRANT SELECT ON p, q, p_id_seq TO {PW_USER}"
        ),
    );
    let (_t, dir) = out_dir("seq_priv");
    let conn =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable", c.port);
    let r = pgbarge(&["backup", "-d", &conn, "-o", dir.to_str().unwrap()], &[]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("permission denied for sequence q_id_seq"), "{}", r.stderr);
    assert!(r.stderr.contains("public.q_id_seq"), "{}", r.stderr);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert!(!dir.exists());
}

/// Waits until pgbarge's COPY of `big` in `db` is running and returns its
/// backend pid. Only in `db`: other tests back up tables named `big` too.
fn wait_for_copy(db: &str) -> String {
    let c = cluster();
    for _ in 0..400 {
        let pid = c.psql(
            db,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbarge' AND query LIKE 'COPY%big%' AND datname = current_database() LIMIT 1",
        );
        if !pid.is_empty() {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("pgbarge's COPY never started");
}

/// A worker whose backend is terminated starts its table over at most twice
/// (tests/worker_retry.rs); a backend terminated every time fails the backup.
#[test]
fn killed_backend_mid_copy_leaves_no_backup() {
    let c = cluster();
    let db = big_table_db("bk_kill", 600_000);
    let (_t, dir) = out_dir("killed");
    let mut child = spawn_backup(&db, &dir, &["-j", "1"]);
    // The first attempt and both retries.
    for _ in 0..3 {
        let pid = wait_for_copy(&db);
        c.psql(&db, &format!("SELECT pg_terminate_backend({pid})"));
        // The terminated session gone from pg_stat_activity before looking
        // for the next attempt's COPY.
        while !c.psql(&db, &format!("SELECT 1 FROM pg_stat_activity WHERE pid = {pid}")).is_empty()
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("backup of table public.big failed"), "{stderr}");
    assert!(stderr.contains("terminat"), "{stderr}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

/// A signal while the coordinator's reads beside the workers wait (here on a
/// sequence another session holds) is reported as the signal: the worker
/// stopped by it adds no cause of its own ("another part of the backup
/// failed" used to replace the signal), and nothing is left.
#[test]
fn a_signal_while_the_coordinator_waits_beside_the_workers_is_reported_as_the_signal() {
    let c = cluster();
    let db = big_table_db("bk_sig_beside", 600_000);
    c.psql(&db, "CREATE TABLE s (id serial PRIMARY KEY); INSERT INTO s DEFAULT VALUES");
    let mut holder = c
        .psql_cmd(&db)
        // A rename holds the sequence ACCESS EXCLUSIVE, which its read waits for.
        .args(["-c", "BEGIN; ALTER SEQUENCE s_id_seq RENAME TO s_held; SELECT pg_sleep(60)"])
        .spawn()
        .unwrap();
    let until = |sql: &str| {
        for _ in 0..1000 {
            if !c.psql(&db, sql).is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("never: {sql}");
    };
    until("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    let (_t, dir) = out_dir("beside");
    let child = backup_started(&db, &dir);
    let waiting = "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgbarge' \
                   AND wait_event_type = 'Lock' AND datname = current_database()";
    until(waiting);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(!stderr.contains("another part"), "{stderr}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

/// A backup of `db` into `dir`, once one of its COPYs is running.
fn backup_started(db: &str, dir: &std::path::Path) -> std::process::Child {
    let child = crate::common::pgbarge_cmd()
        .args(["backup", "-d", &cluster().conn(db), "-o", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_copy(db);
    child
}

fn signal_mid_run_leaves_no_backup(signal: i32, name: &str) {
    let db = big_table_db(&format!("bk_{name}"), 600_000);
    let (_t, dir) = out_dir("interrupted");
    let child = backup_started(&db, &dir);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("interrupted by {name}")), "{stderr}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn sigint_mid_run_leaves_no_backup() {
    signal_mid_run_leaves_no_backup(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_mid_run_leaves_no_backup() {
    signal_mid_run_leaves_no_backup(libc::SIGTERM, "SIGTERM");
}

#[test]
fn locked_table_times_out_with_its_name() {
    let c = cluster();
    let db = c.create_db("bk_locked");
    c.psql(&db, "CREATE TABLE busy (x int); CREATE TABLE calm (x int)");
    let mut holder = c
        .psql_cmd(&db)
        .arg("-c")
        .arg("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;")
        .spawn()
        .unwrap();
    for _ in 0..200 {
        let n = c.psql(&db, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'busy' AND l.mode = 'AccessExclusiveLock' AND l.granted");
        if n == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let (_t, dir) = out_dir("locked");
    let r = pgbarge(
        &["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "--lock-wait-timeout", "0.5"],
        &[],
    );
    let _ = holder.kill();
    let _ = holder.wait();
    r.expect_code(3);
    assert!(r.stderr.contains("table public.busy is locked by another session"), "{}", r.stderr);
    assert!(leftovers(&dir).is_empty());
}

#[test]
fn table_dropped_while_waiting_is_named() {
    let c = cluster();
    let db = c.create_db("bk_dropped");
    c.psql(&db, "CREATE TABLE doomed (x int); CREATE TABLE calm (x int)");
    let mut holder = c
        .psql_cmd(&db)
        .arg("-c")
        .arg("BEGIN; LOCK TABLE doomed IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); DROP TABLE doomed; COMMIT;")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_t, dir) = out_dir("dropped");
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[]);
    let _ = holder.wait();
    r.expect_code(3);
    assert!(r.stderr.contains("doomed"), "{}", r.stderr);
    assert!(leftovers(&dir).is_empty());
}

#[test]
fn progress_plain_lines_tty_bars_and_quiet() {
    let c = cluster();
    let db = big_table_db("bk_progress", 400_000);
    let (_t, dir) = out_dir("plain");
    let conn = c.conn(&db);
    // stderr is a pipe: plain lines, here every 0.05 s.
    let r = pgbarge(
        &["backup", "-d", &conn, "-o", dir.to_str().unwrap(), "-j", "1"],
        &[("PGBARGE_PROGRESS_SECS", "0.05")],
    );
    r.expect_code(0);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("backup: "))
        .unwrap_or_else(|| panic!("no progress line: {}", r.stderr));
    assert!(line.contains("/2 tables,") && line.contains(" rows, "), "{line}");
    assert!(r.stdout.contains("backup complete"), "{}", r.stdout);

    // -q: nothing on stderr, nothing on stdout.
    let (_t, dir) = out_dir("quiet");
    let r = pgbarge(
        &["backup", "-q", "-d", &conn, "-o", dir.to_str().unwrap()],
        &[("PGBARGE_PROGRESS_SECS", "0.05")],
    );
    r.expect_code(0);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));

    // A terminal: indicatif bars with the overall count (script(1) gives a pty).
    let (_t, dir) = out_dir("tty");
    let cmd =
        format!("{} backup -d '{conn}' -o '{}' -j 1", env!("CARGO_BIN_EXE_pgbarge"), dir.display());
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tables") && text.contains("public.big"), "{text}");
    assert!(!text.contains("backup: 0/"), "plain lines on a terminal: {text}");
}

#[test]
fn schema_needs_a_usable_pg_dump() {
    let c = cluster();
    let db = db_with("bk_pgdump", "erp/target.sql");
    let conn = c.conn(&db);
    let (_t, dir) = out_dir("missing");
    let r = pgbarge(
        &["backup", "--schema", "-d", &conn, "-o", dir.to_str().unwrap()],
        &[("PGBARGE_PG_DUMP", "/nonexistent/pg_dump")],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("cannot run /nonexistent/pg_dump"), "{}", r.stderr);
    assert!(r.stderr.contains("apt-get install postgresql-client"), "{}", r.stderr);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));

    let t = tempfile::tempdir().unwrap();
    let old = t.path().join("pg_dump");
    std::fs::write(&old, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_t2, dir) = out_dir("old");
    let r = pgbarge(
        &["backup", "--schema", "-d", &conn, "-o", dir.to_str().unwrap()],
        &[("PGBARGE_PG_DUMP", old.to_str().unwrap())],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("is version 9, older than the server"), "{}", r.stderr);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

/// Issue: the coordinator's session was terminated mid-run, its locks went
/// with it, another session truncated a table not yet read, and the backup
/// still said "complete" with that table empty.
#[test]
fn coordinator_terminated_mid_run_fails_the_backup() {
    let c = cluster();
    let db = big_table_db("bk_coord", 600_000);
    c.psql(&db, "CREATE TABLE victim (x int); INSERT INTO victim SELECT generate_series(1, 500)");
    let (_t, dir) = out_dir("coord");
    let child = crate::common::pgbarge_cmd()
        .args(["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()])
        .args(["-t", "big", "-t", "victim", "-j", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_copy(&db);
    let coordinator = c.psql(
        &db,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbarge' \
         AND state = 'idle in transaction' AND datname = current_database()",
    );
    assert!(!coordinator.is_empty() && !coordinator.contains('\n'), "{coordinator:?}");
    c.psql(&db, &format!("SELECT pg_terminate_backend({coordinator})"));
    // With the coordinator's lock gone, TRUNCATE (not MVCC-safe) goes through.
    c.psql(&db, "SET lock_timeout = '20s'; TRUNCATE victim");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("the coordinator session ended before the backup finished"),
        "{stderr}"
    );
    assert!(stderr.contains("terminat"), "{stderr}");
    assert!(!stdout.contains("backup complete"), "{stdout}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

/// Starts a backup of `db` into `dir` with extra arguments, not waiting for it.
fn spawn_backup(db: &str, dir: &Path, extra: &[&str]) -> std::process::Child {
    crate::common::pgbarge_cmd()
        .args(["backup", "-d", &cluster().conn(db), "-o", dir.to_str().unwrap(), "-q"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The backup in `dir` is whole: verify passes, which also finds unlisted files.
fn assert_whole_backup(dir: &Path, what: &str) {
    let r = pgbarge(&["verify", dir.to_str().unwrap(), "-q"], &[]);
    assert_eq!(r.code, 0, "{what}: verify\n{}\n{}", r.stdout, r.stderr);
}

/// Issue: `backup --force` started while another backup wrote into the same
/// folder reported success, and then the first run's cleanup deleted the
/// folder: a backup reported complete was gone.
#[test]
fn force_into_a_folder_being_written_is_refused() {
    let db = big_table_db("bk_lock_force", 20_000);
    let (_t, dir) = out_dir("locked");
    let mut refused = 0;
    for attempt in 0..40 {
        let first = spawn_backup(&db, &dir, &["--force"]);
        // Stagger the second run across the first one's lifetime.
        std::thread::sleep(std::time::Duration::from_millis(5 * (attempt % 8)));
        let second = spawn_backup(&db, &dir, &["--force"]);
        let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
        for out in [&a, &b] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {}
                Some(2) => {
                    refused += 1;
                    assert!(
                        stderr.contains("is being written by another pgbarge run (process "),
                        "attempt {attempt}: {stderr}"
                    );
                }
                other => panic!("attempt {attempt}: exit {other:?}: {stderr}"),
            }
        }
        assert!(a.status.success() || b.status.success(), "attempt {attempt}: neither finished");
        assert_whole_backup(&dir, &format!("attempt {attempt}"));
    }
    // The runs did overlap: the lock, not luck, kept the backup whole.
    assert!(refused > 0, "no attempt overlapped");
}

/// Issue: two backups started at the same instant into one new folder both
/// exited 0, leaving one manifest and a file it does not list.
#[test]
fn two_backups_into_one_new_folder_leave_one_whole_backup() {
    let c = cluster();
    let db = c.create_db("bk_lock_race");
    c.psql(
        &db,
        "CREATE TABLE a (x int); INSERT INTO a SELECT generate_series(1, 1000);
                 CREATE TABLE b (x int); INSERT INTO b SELECT generate_series(1, 1000)",
    );
    let root = tempfile::tempdir().unwrap();
    for attempt in 0..40 {
        let dir = root.path().join(format!("new{attempt}"));
        let first = spawn_backup(&db, &dir, &["-t", "a"]);
        let second = spawn_backup(&db, &dir, &["-t", "b"]);
        let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
        let codes = (a.status.code(), b.status.code());
        let stderr =
            format!("{}{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
        assert!(
            codes == (Some(0), Some(2)) || codes == (Some(2), Some(0)),
            "attempt {attempt}: exits {codes:?}: {stderr}"
        );
        assert!(
            stderr.contains("is being written by another pgbarge run")
                || stderr.contains("is not empty"),
            "attempt {attempt}: {stderr}"
        );
        assert_whole_backup(&dir, &format!("attempt {attempt}"));
        let manifest = Manifest::read(&dir).unwrap();
        assert_eq!(manifest.tables.len(), 1, "attempt {attempt}");
    }
}

/// A folder being read (verify, restore) is not written, `--force` included;
/// a folder being written is not read.
#[test]
fn folder_being_read_is_not_written_and_the_reverse() {
    use std::os::unix::io::AsRawFd;
    let c = cluster();
    let db = c.create_db("bk_read_lock");
    c.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let (_t, dir) = out_dir("shared");
    let d = dir.to_str().unwrap();
    pgbarge(&["backup", "-q", "-d", &c.conn(&db), "-o", d], &[]).expect_code(0);
    // A lock dropped here can stay held for a moment: another test's thread
    // that forks copies every descriptor of this process, the folder's with
    // it, until its child execs. So taking the lock retries for a while.
    let hold = |op: i32| {
        let f = std::fs::File::open(&dir).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // SAFETY: flock on a descriptor this test owns.
        while unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            assert!(std::time::Instant::now() < deadline, "the folder's lock stayed taken");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        f
    };
    let reader = hold(libc::LOCK_SH);
    let r = pgbarge(&["backup", "-d", &c.conn(&db), "-o", d, "--force"], &[]);
    r.expect_code(2);
    let me = format!("is being read by another pgbarge run (process {}", std::process::id());
    assert!(r.stderr.contains(&me), "{}", r.stderr);
    // Readers share the folder.
    pgbarge(&["verify", "-q", d], &[]).expect_code(0);
    drop(reader);
    let writer = hold(libc::LOCK_EX);
    let r = pgbarge(&["verify", d], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("is being written by another pgbarge run"), "{}", r.stderr);
    let r = pgbarge(&["restore", d, "-d", &c.conn(&db), "--mode", "truncate"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("is being written by another pgbarge run"), "{}", r.stderr);
    drop(writer);
    assert_eq!(Manifest::read(&dir).unwrap().tables[0].rows, 1);
}

/// kill -9 mid-run: the data files written so far are only in `data.tmp/`
/// (no `data/`, no manifest), so nothing there looks like a backup; a new
/// run refuses the folder unless `--force`, which replaces it whole.
#[test]
fn a_killed_backup_leaves_only_an_unpublished_data_folder() {
    let db = big_table_db("bk_killed", 600_000);
    let (_t, dir) = out_dir("killed");
    let mut child = backup_started(&db, &dir);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.join("data.tmp").is_dir());
    assert!(!dir.join("data").exists());
    assert!(!dir.join("manifest.json").exists());
    let d = dir.to_str().unwrap();
    let r = pgbarge(&["verify", d], &[]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    let r = pgbarge(&["backup", "-d", &cluster().conn(&db), "-o", d], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    pgbarge(&["backup", "-d", &cluster().conn(&db), "-o", d, "--force", "-q"], &[]).expect_code(0);
    assert!(!dir.join("data.tmp").exists());
    assert_whole_backup(&dir, "after --force over a killed run");
}

/// Sequences are recorded as `SELECT last_value, is_called` reads them,
/// whether they handed out values (read in one query on a session of its
/// own), never did, or were set back with `setval(.., false)` (read by the
/// coordinator, since the one query cannot tell their `last_value`).
#[test]
fn sequences_are_recorded_exactly_whether_called_or_not() {
    let c = cluster();
    let db = c.create_db("bk_seq_states");
    c.psql(
        &db,
        "CREATE TABLE used (id serial PRIMARY KEY); INSERT INTO used DEFAULT VALUES;
         INSERT INTO used DEFAULT VALUES;
         CREATE TABLE unused (id bigserial PRIMARY KEY);
         CREATE TABLE reset (id int GENERATED BY DEFAULT AS IDENTITY (START WITH 10));
         INSERT INTO reset DEFAULT VALUES;
         SELECT setval(pg_get_serial_sequence('reset', 'id'), 500, false);",
    );
    let (_t, dir) = out_dir("seq_states");
    pgbarge(&["backup", "-q", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[]).expect_code(0);
    let m = Manifest::read(&dir).unwrap();
    let mut seen = 0;
    for t in &m.tables {
        for s in &t.sequences {
            // `bool || text` is 'true' or 'false'.
            let truth =
                c.psql(&db, &format!("SELECT last_value || ' ' || is_called FROM {}", s.sequence));
            assert_eq!(format!("{} {}", s.last_value, s.is_called), truth, "{}", s.sequence);
            seen += 1;
        }
    }
    assert_eq!(seen, 3);
    let recorded = |table: &str| {
        let s = &m.tables.iter().find(|t| t.name == table).unwrap().sequences[0];
        (s.last_value, s.is_called)
    };
    assert_eq!(recorded("used"), (2, true));
    assert_eq!(recorded("unused"), (1, false));
    assert_eq!(recorded("reset"), (500, false));
}

/// The sequences are read in a transaction of their own, whose locks end
/// with it: an `ALTER SEQUENCE` during a backup does not wait for the
/// backup to end (nor would every `nextval` queued behind it).
#[test]
fn alter_sequence_during_a_backup_does_not_wait_for_it() {
    let c = cluster();
    let db = big_table_db("bk_seq_alter", 600_000);
    c.psql(
        &db,
        "CREATE TABLE numbered (id serial PRIMARY KEY); INSERT INTO numbered DEFAULT VALUES",
    );
    let (_t, dir) = out_dir("seq_alter");
    // zstd's slowest level keeps the big table's COPY running for many
    // seconds, long after the sequences were read as the workers started.
    let mut child = spawn_backup(&db, &dir, &["--compress", "zstd:19"]);
    wait_for_copy(&db);
    std::thread::sleep(std::time::Duration::from_secs(1));
    c.psql(&db, "SET lock_timeout = '2s'; ALTER SEQUENCE numbered_id_seq RESTART WITH 7000");
    assert!(child.try_wait().unwrap().is_none(), "the backup was still running");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}
