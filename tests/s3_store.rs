//! Backups in an S3-compatible store (s3s-fs on 127.0.0.1): backup, verify
//! and restore round trip; an interrupted upload leaves no manifest; wrong
//! credentials, a missing bucket and an unreachable endpoint are clear
//! errors with exit 3; the secret key never appears.

use std::process::{Command, Stdio};

use crate::common::s3::{SECRET_KEY, s3};
use crate::common::{cluster, db_with, digest_of, pgbarge};

fn run(args: &[&str], extra: &[(&str, &str)]) -> crate::common::Run {
    let env = s3().env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    let r = pgbarge(args, &all);
    assert!(!r.all().contains(SECRET_KEY), "the secret key leaked:\n{}", r.all());
    r
}

#[test]
fn backup_verify_restore_round_trip() {
    let c = cluster();
    let db = db_with("s3_round", "erp/target.sql");
    let bucket = s3().bucket("round");
    let url = format!("s3://{bucket}/nightly/erp");
    let conn = c.conn(&db);
    run(&["backup", "-q", "-d", &conn, "-o", &url, "--schema"], &[]).expect_code(0);
    // The objects are what a local backup holds: plain tools can check them.
    let dir = s3().root.join(&bucket).join("nightly/erp");
    let ok = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    let r = run(&["verify", &url, "--deep", "-d", &conn], &[]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!("OK: {url} is whole and matches the database")),
        "{}",
        r.stdout
    );

    let fresh = c.create_db("s3_round_fresh");
    let fresh_conn = c.conn(&fresh);
    run(&["restore", &url, "-d", &fresh_conn, "--schema", "--disable-triggers", "-q"], &[])
        .expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));

    // A second backup into the same prefix is refused; --force replaces it.
    let r = run(&["backup", "-q", "-d", &conn, "-o", &url], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    run(&["backup", "-q", "-d", &conn, "-o", &url, "--force"], &[]).expect_code(0);
    assert!(!dir.join("schema.sql").exists(), "the old backup's schema.sql was left");

    // Damage is found in the store too.
    let m = pgbarge::storage::manifest::Manifest::read(&dir).unwrap();
    let file = &m.tables.iter().find(|t| t.name == "TimeEntry").unwrap().file;
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(dir.join(file), bytes).unwrap();
    let r = run(&["verify", &url], &[]);
    r.expect_code(1);
    assert!(r.stdout.contains(&format!("{file}: file sha256 is")), "{}", r.stdout);
}

#[test]
fn an_interrupted_upload_leaves_no_manifest() {
    let c = cluster();
    let db = c.create_db("s3_interrupt");
    c.psql(&db, "CREATE TABLE big (id int, payload text);
        INSERT INTO big SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 6) FROM generate_series(1, 600000) g;");
    let bucket = s3().bucket("interrupted");
    let url = format!("s3://{bucket}/b");
    let mut cmd = crate::common::pgbarge_cmd();
    cmd.args(["backup", "-d", &c.conn(&db), "-o", &url, "-j", "1"]);
    for (k, v) in s3().env() {
        cmd.env(k, v);
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut started = false;
    for _ in 0..400 {
        let n = c.psql(&db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge' AND query LIKE 'COPY%big%' AND datname = current_database()");
        if n != "0" {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(started, "the COPY never started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let dir = s3().root.join(&bucket).join("b");
    assert!(!dir.join("manifest.json").exists());
    let left: Vec<_> = walk(&dir);
    assert!(left.is_empty(), "objects left behind: {left:?}");
    // Nothing is left at the prefix: the same answer as a missing local folder.
    let r = run(&["verify", &url], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("no such backup (nothing at this prefix)"), "{}", r.stderr);
}

#[test]
fn store_errors_are_clear_and_exit_3() {
    let c = cluster();
    let db = db_with("s3_errors", "erp/target.sql");
    let conn = c.conn(&db);
    let bucket = s3().bucket("errors");
    let url = format!("s3://{bucket}/x");

    let r =
        run(&["backup", "-d", &conn, "-o", &url], &[("AWS_SECRET_ACCESS_KEY", "wrong-secret-key")]);
    r.expect_code(3);
    assert!(r.stderr.contains("the store refused the credentials"), "{}", r.stderr);
    assert!(!r.all().contains("wrong-secret-key"), "{}", r.all());

    let r = run(&["backup", "-d", &conn, "-o", "s3://no-such-bucket/x"], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("the bucket does not exist"), "{}", r.stderr);

    let r = run(&["verify", &url], &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
    r.expect_code(3);
    assert!(r.stderr.contains("the store cannot be reached"), "{}", r.stderr);

    let r = run(&["restore", "s3://no-such-bucket/x", "-d", &conn], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("the bucket does not exist"), "{}", r.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() { v.extend(walk(&p)) } else { v.push(p) }
    }
    v
}

#[test]
fn credentials_from_an_aws_profile() {
    let c = cluster();
    let db = db_with("s3_profile", "erp/target.sql");
    let bucket = s3().bucket("profile");
    let t = tempfile::tempdir().unwrap();
    let creds = t.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[backups]\naws_access_key_id = {}\naws_secret_access_key = {SECRET_KEY}\n",
            crate::common::s3::ACCESS_KEY
        ),
    )
    .unwrap();
    let mut cmd = crate::common::pgbarge_cmd();
    cmd.args(["backup", "-q", "-d", &c.conn(&db), "-o", &format!("s3://{bucket}/p")])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", s3().port))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_PROFILE", "backups")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_CONFIG_FILE", t.path().join("none"));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(s3().root.join(&bucket).join("p/manifest.json").exists());
}
