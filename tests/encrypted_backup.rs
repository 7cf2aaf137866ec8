//! Encrypted backups (`backup --encrypt-to`): files the standard `age` tool
//! opens, a folder anyone can check without the key but that tells nothing
//! of its content, `verify` and `restore` with `--identity`, clear errors
//! for a missing or wrong key (exit 2), damage for a changed file (exit 1),
//! and no secret key in any output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Run, cluster, db_with, digest_of, pgbarge};

/// A fresh age key made by `age-keygen` in `dir`: (key file, public key, secret).
fn age_key(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let key = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen (Debian package age, installed by scripts/install-deps.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&key).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key as a comment")
        .to_string();
    let secret = text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap().to_string();
    (key, public, secret)
}

/// Asserts `secret` appears in no output of `r`, and returns it.
fn no_secret<'a>(r: &'a Run, secret: &str) -> &'a Run {
    assert!(!r.all().contains(secret), "the secret key was printed:\n{}", r.all());
    assert!(!r.all().contains("AGE-SECRET-KEY-"), "a secret key was printed:\n{}", r.all());
    r
}

fn run(args: &[&str]) -> Run {
    pgbarge(args, &[])
}

fn sh(dir: &Path, command: &str) -> (bool, Vec<u8>, String) {
    let out = Command::new("bash").arg("-c").arg(command).current_dir(dir).output().unwrap();
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Names of the files in `dir/data`, sorted.
fn data_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn encrypted_backup_opens_with_age_and_tells_nothing_without_the_key() {
    let c = cluster();
    let db = db_with("enc_round", "erp/target.sql");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public, secret) = age_key(tmp.path(), "key.txt");
    let (other_key, _, other_secret) = age_key(tmp.path(), "other.txt");
    let (enc, plain) = (tmp.path().join("enc"), tmp.path().join("plain"));
    let conn = c.conn(&db);
    let (enc_s, key_s) = (enc.to_str().unwrap(), key.to_str().unwrap());
    let r = run(&["backup", "-d", &conn, "-o", enc_s, "--schema", "--encrypt-to", &public]);
    no_secret(r.expect_code(0), &secret);
    assert!(r.stdout.contains("encrypted (age) to age1"), "{}", r.stdout);
    run(&["backup", "-q", "-d", &conn, "-o", plain.to_str().unwrap()]).expect_code(0);

    // No name tells a table; nothing readable describes the content.
    let names = data_files(&enc);
    assert_eq!(names.len(), data_files(&plain).len());
    for (i, n) in names.iter().enumerate() {
        assert_eq!(n, &format!("{:04}.csv.zst.age", i + 1));
    }
    let mut top: Vec<String> = std::fs::read_dir(&enc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            "SHA256SUMS",
            "data",
            "manifest.age",
            "manifest.json",
            "schema-post.sql.age",
            "schema-pre.sql.age"
        ]
    );
    let manifest = std::fs::read_to_string(enc.join("manifest.json")).unwrap();
    for word in ["User", "Customer", "tables", "rows", "fingerprint", "columns", "snapshot", &db] {
        assert!(!manifest.contains(word), "manifest.json reveals {word}:\n{manifest}");
    }
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["encryption"]["recipients"], serde_json::json!([public]));
    assert_eq!(m["files"].as_array().unwrap().len(), names.len() + 3);

    // The standard tools: sha256sum without a key, age and zstd with it.
    let (ok, _, err) = sh(&enc, "sha256sum -c --quiet SHA256SUMS");
    assert!(ok, "sha256sum -c: {err}");
    let plain_names = data_files(&plain);
    for (n, p) in names.iter().zip(&plain_names) {
        let (ok, csv, err) = sh(&enc, &format!("age -d -i {key_s} data/{n} | zstd -dc"));
        assert!(ok, "age -d {n}: {err}");
        let (_, want, _) = sh(&plain, &format!("zstd -dc data/{p}"));
        assert_eq!(csv, want, "{n} holds other CSV than {p}");
    }
    let (ok, json, err) = sh(&enc, &format!("age -d -i {key_s} manifest.age"));
    assert!(ok, "{err}");
    let full: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(full["tables"].as_array().unwrap().iter().any(|t| t["name"] == "User"));
    let (ok, sql, _) = sh(&enc, &format!("age -d -i {key_s} schema-pre.sql.age"));
    assert!(ok && String::from_utf8_lossy(&sql).contains("CREATE TABLE"));

    // verify: files without a key, content with it.
    let r = run(&["verify", enc_s]);
    no_secret(r.expect_code(0), &secret);
    assert!(r.stdout.contains("--identity"), "{}", r.stdout);
    assert!(!r.stdout.contains("User"), "{}", r.stdout);
    for extra in [vec!["--deep"], vec!["-d", &conn], vec!["-t", "User"]] {
        let mut a = vec!["verify", enc_s];
        a.extend(&extra);
        let r = run(&a);
        r.expect_code(2);
        assert!(r.stderr.contains("--identity"), "{extra:?}: {}", r.stderr);
    }
    let r = run(&["verify", enc_s, "--deep", "--identity", key_s, "-d", &conn]);
    no_secret(r.expect_code(0), &secret);
    assert!(r.stdout.contains("OK: ") && r.stdout.contains("public.\"User\""), "{}", r.stdout);
    let r = run(&["verify", enc_s, "--deep", "--identity", other_key.to_str().unwrap()]);
    no_secret(r.expect_code(2), &other_secret);
    assert!(r.stderr.contains("none of the keys") && r.stderr.contains(&public), "{}", r.stderr);

    // restore: refused without a key, whole with it.
    let fresh = c.create_db("enc_round_fresh");
    let r = run(&["restore", enc_s, "-d", &c.conn(&fresh), "--schema"]);
    r.expect_code(2);
    assert!(r.stderr.contains("encrypted") && r.stderr.contains("--identity"), "{}", r.stderr);
    let r = run(&["restore", enc_s, "-d", &c.conn(&fresh), "--schema", "--identity", key_s]);
    no_secret(r.expect_code(0), &secret);
    assert_eq!(digest_of(&fresh), digest_of(&db));
    c.psql(&fresh, "CREATE TABLE added (x int); DELETE FROM \"TimeEntry\"");
    let r = run(&["restore", enc_s, "-d", &c.conn(&fresh), "--clean", "--identity", key_s]);
    no_secret(r.expect_code(0), &secret);
    assert_eq!(digest_of(&fresh), digest_of(&db));
}

#[test]
fn a_changed_encrypted_file_is_damage_with_and_without_the_key() {
    let c = cluster();
    let db = c.create_db("enc_tamper");
    c.psql(&db, "CREATE TABLE t (x int, y text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) i");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public, secret) = age_key(tmp.path(), "key.txt");
    let dir = tmp.path().join("b");
    let (dir_s, key_s) = (dir.to_str().unwrap(), key.to_str().unwrap());
    run(&["backup", "-q", "-d", &c.conn(&db), "-o", dir_s, "--encrypt-to", &public]).expect_code(0);
    let file = dir.join("data/0001.csv.zst.age");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let r = run(&["verify", dir_s]);
    r.expect_code(1);
    assert!(r.stdout.contains("data/0001.csv.zst.age: sha256 is"), "{}", r.stdout);
    let r = run(&["verify", dir_s, "--identity", key_s]);
    no_secret(r.expect_code(1), &secret);
    assert!(r.stdout.contains("DAMAGED") && r.stdout.contains("does not decrypt"), "{}", r.stdout);
    let target = c.create_db("enc_tamper_target");
    c.psql(&target, "CREATE TABLE t (x int, y text)");
    let r = run(&["restore", dir_s, "-d", &c.conn(&target), "--identity", key_s]);
    no_secret(r.expect_code(1), &secret);
    assert!(r.stderr.contains("does not decrypt"), "{}", r.stderr);
    assert_eq!(c.psql(&target, "SELECT count(*) FROM t"), "0");

    // The encrypted manifest changed: found without the key, and before any use with it.
    std::fs::write(&file, {
        bytes[mid] ^= 0x01;
        &bytes
    })
    .unwrap();
    run(&["verify", dir_s, "--identity", key_s]).expect_code(0);
    let manifest = dir.join("manifest.age");
    let mut m = std::fs::read(&manifest).unwrap();
    let last = m.len() - 1;
    m[last] ^= 0x01;
    std::fs::write(&manifest, &m).unwrap();
    let r = run(&["verify", dir_s]);
    r.expect_code(1);
    assert!(r.stdout.contains("manifest.age: sha256 is"), "{}", r.stdout);
    let r = run(&["verify", dir_s, "--identity", key_s]);
    no_secret(r.expect_code(1), &secret);
    assert!(r.stderr.contains("manifest.age: sha256 is"), "{}", r.stderr);
}

#[test]
fn recipients_come_from_files_and_ssh_keys_and_bad_ones_are_refused() {
    let c = cluster();
    let db = c.create_db("enc_recipients");
    c.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public, secret) = age_key(tmp.path(), "key.txt");
    let ssh = tmp.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@pgbarge", "-f"])
        .arg(&ssh)
        .status();
    let has_ssh = made.is_ok_and(|s| s.success());
    let list = tmp.path().join("recipients.txt");
    let mut text = format!("# the team\n{public}\n");
    if has_ssh {
        text.push_str(&std::fs::read_to_string(ssh.with_extension("pub")).unwrap());
    }
    std::fs::write(&list, text).unwrap();
    let dir = tmp.path().join("b");
    let dir_s = dir.to_str().unwrap();
    let at = format!("@{}", list.display());
    run(&["backup", "-q", "-d", &c.conn(&db), "-o", dir_s, "--encrypt-to", &at]).expect_code(0);
    let r = run(&["verify", dir_s, "--deep", "--identity", key.to_str().unwrap()]);
    no_secret(r.expect_code(0), &secret);
    if has_ssh {
        let r = run(&["verify", dir_s, "--deep", "--identity", ssh.to_str().unwrap()]);
        r.expect_code(0);
        assert!(!r.all().contains("PRIVATE KEY"), "{}", r.all());
    }
    let bad = tmp.path().join("bad");
    let r = run(&[
        "backup",
        "-d",
        &c.conn(&db),
        "-o",
        bad.to_str().unwrap(),
        "--encrypt-to",
        "age1nope",
    ]);
    r.expect_code(2);
    assert!(r.stderr.contains("invalid recipient"), "{}", r.stderr);
    assert!(!bad.exists(), "nothing is written for a bad recipient");
    let r = run(&["verify", dir_s, "--identity", list.to_str().unwrap()]);
    r.expect_code(2);
    assert!(r.stderr.contains("not an age identity"), "{}", r.stderr);
}

#[test]
fn run_steps_encrypt_and_read_with_keys_relative_to_the_plan() {
    let c = cluster();
    let db = db_with("enc_run", "erp/target.sql");
    let tmp = tempfile::tempdir().unwrap();
    let (_, public, secret) = age_key(tmp.path(), "key.txt");
    std::fs::write(tmp.path().join("keys.txt"), format!("{public}\n")).unwrap();
    let plan = tmp.path().join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"enc\"\nlog_dir = \"runs\"\n[connections]\ndb = { env = \"MY_DB\" }\n\
         [[steps]]\nname = \"before\"\nkind = \"backup\"\ndb = \"db\"\noutput = \"b\"\ntables = [\"Customer\"]\nencrypt_to = [\"@keys.txt\"]\n\
         [[steps]]\nkind = \"verify\"\nbackup = \"before\"\ndb = \"db\"\ndeep = true\nidentity = [\"key.txt\"]\n\
         [[steps]]\nkind = \"restore\"\nbackup = \"before\"\ndb = \"db\"\nmode = \"truncate\"\ndisable_triggers = true\nidentity = [\"key.txt\"]\n",
    )
    .unwrap();
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &c.conn(&db))]);
    no_secret(r.expect_code(0), &secret);
    assert!(r.stdout.contains("restore complete: 1 table,"), "{}", r.stdout);
    assert!(tmp.path().join("b/data/0001.csv.zst.age").exists());
}

#[test]
fn an_encrypted_backup_round_trips_through_an_s3_store() {
    use crate::common::s3::{SECRET_KEY, s3};
    let c = cluster();
    let db = db_with("enc_s3", "erp/target.sql");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public, secret) = age_key(tmp.path(), "key.txt");
    let key_s = key.to_str().unwrap();
    let url = format!("s3://{}/enc", s3().bucket("encrypted"));
    let env = s3().env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let go = |args: &[&str]| {
        let r = pgbarge(args, &env);
        assert!(!r.all().contains(SECRET_KEY), "{}", r.all());
        no_secret(&r, &secret);
        r
    };
    go(&["backup", "-q", "-d", &c.conn(&db), "-o", &url, "--schema", "--encrypt-to", &public])
        .expect_code(0);
    let r = go(&["verify", &url]);
    r.expect_code(0);
    assert!(r.stdout.contains("--identity"), "{}", r.stdout);
    go(&["verify", &url, "--deep", "--identity", key_s]).expect_code(0);
    let fresh = c.create_db("enc_s3_fresh");
    go(&["restore", &url, "-d", &c.conn(&fresh), "--schema", "-q", "--identity", key_s])
        .expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));
}

#[test]
fn a_passphrase_encrypts_and_opens_a_backup() {
    let c = cluster();
    let db = db_with("enc_pass", "erp/target.sql");
    let tmp = tempfile::tempdir().unwrap();
    let pass = tmp.path().join("pass.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let dir = tmp.path().join("b");
    let (dir_s, pass_s) = (dir.to_str().unwrap(), pass.to_str().unwrap());
    let r = run(&[
        "backup",
        "-d",
        &c.conn(&db),
        "-o",
        dir_s,
        "--schema",
        "--encrypt-passphrase-file",
        pass_s,
    ]);
    r.expect_code(0);
    assert!(r.stdout.contains("encrypted (age) to a passphrase"), "{}", r.stdout);
    assert!(dir.join("key.age").exists() && dir.join("data/0001.csv.zst.age").exists());
    let everything =
        format!("{}{}", r.all(), std::fs::read_to_string(dir.join("manifest.json")).unwrap());
    assert!(!everything.contains("correct horse"), "{everything}");

    run(&["verify", dir_s]).expect_code(0);
    let r = pgbarge(
        &["verify", dir_s, "--deep"],
        &[("PGBARGE_PASSPHRASE", "correct horse battery staple")],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("OK: "), "{}", r.stdout);
    let r = pgbarge(&["verify", dir_s, "--deep"], &[("PGBARGE_PASSPHRASE", "wrong")]);
    r.expect_code(2);
    assert!(r.stderr.contains("does not open"), "{}", r.stderr);
    assert!(!r.all().contains("wrong\n") && !r.all().contains("correct horse"), "{}", r.all());
    let r = run(&[
        "backup",
        "-d",
        &c.conn(&db),
        "-o",
        dir_s,
        "--force",
        "--encrypt-to",
        "age1x",
        "--encrypt-passphrase-file",
        pass_s,
    ]);
    r.expect_code(2);
    let fresh = c.create_db("enc_pass_fresh");
    let r = run(&[
        "restore",
        dir_s,
        "-d",
        &c.conn(&fresh),
        "--schema",
        "-q",
        "--encrypt-passphrase-file",
        pass_s,
    ]);
    r.expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));
}
