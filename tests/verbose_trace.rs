//! `-v/--verbose`: every statement sent, with its duration and connection,
//! on stderr; passwords masked; nothing without the flag.

use crate::common::{PW_PASSWORD, PW_USER, cluster, pgbarge};

#[test]
fn verbose_prints_each_statement_with_its_duration_and_masks_secrets() {
    let c = cluster();
    let db = c.create_db("verbose");
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("a.sql");
    std::fs::write(
        &f,
        "CREATE TABLE t (id int);\n\
         SELECT 'not a PASSWORD ''literal''' AS x;\n\
         CREATE ROLE verbose_role LOGIN PASSWORD 'topsecret-value';\n\
         DROP ROLE verbose_role;\n",
    )
    .unwrap();
    let r = pgbarge(&["-v", "sql", "-d", &c.conn(&db), f.to_str().unwrap()], &[]);
    r.expect_code(0);
    let trace: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("-- ")).collect();
    // The pinned settings, then each statement of the file.
    assert!(trace.iter().any(|l| l.contains("SET client_encoding = 'UTF8';")), "{}", r.stderr);
    let create = trace
        .iter()
        .find(|l| l.contains("CREATE TABLE t (id int)"))
        .unwrap_or_else(|| panic!("not traced: {}", r.stderr));
    assert!(create.contains(" ms postgresql://postgres@"), "{create}");
    assert!(!r.all().contains("topsecret-value"), "masked: {}", r.stderr);
    assert!(r.stderr.contains("LOGIN PASSWORD '********'"), "{}", r.stderr);
    assert!(r.stderr.contains("SELECT 'not a PASSWORD ''literal''' AS x"), "{}", r.stderr);
    // The rows still print on stdout, as without -v.
    assert!(r.stdout.contains("not a PASSWORD 'literal'"), "{}", r.stdout);

    // A connection's password never shows.
    let conn =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{db}?sslmode=require", c.port);
    let r = pgbarge(&["list", "-v", "-d", &conn], &[]);
    r.expect_code(0).expect_no_password();
    assert!(r.stderr.contains("postgresql://pwuser@127.0.0.1"), "{}", r.stderr);

    let r = pgbarge(&["list", "-d", &c.conn(&db)], &[]);
    r.expect_code(0);
    assert!(!r.stderr.contains("-- "), "no trace without -v: {}", r.stderr);
    let r = pgbarge(&["list", "--verbose", "-d", &c.conn(&db)], &[]);
    r.expect_code(0);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("-- ") && l.contains("pg_class")),
        "{}",
        r.stderr
    );
}
