//! Connections: URL, keyword string, PG* variables, the password file, TLS,
//! pinned session settings, and one clear error (exit 3) per failure.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::common::{PW_PASSWORD, PW_USER, block_on, cluster, pgbarge};
use pgbarge::conn::conninfo::resolve;
use pgbarge::conn::session::{Purpose, connect};

fn one_table_db(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, "CREATE TABLE \"Role\" (id int PRIMARY KEY, name text)");
    db
}

#[test]
fn list_with_url() {
    let c = cluster();
    let db = one_table_db("url");
    let url = format!(
        "postgresql://postgres@{}:{}/{db}",
        c.dir.display().to_string().replace('/', "%2F"),
        c.port
    );
    let r = pgbarge(&["list", "-d", &url], &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("public.\"Role\""), "{}", r.stdout);
}

#[test]
fn list_with_keyword_conninfo() {
    let c = cluster();
    let db = one_table_db("kw");
    let r = pgbarge(&["list", "-d", &c.conn(&db)], &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("public.\"Role\""));
}

#[test]
fn list_with_only_pg_environment() {
    let c = cluster();
    let db = one_table_db("env");
    let dir = c.dir.display().to_string();
    let port = c.port.to_string();
    let r = pgbarge(
        &["list"],
        &[("PGHOST", &dir), ("PGPORT", &port), ("PGUSER", "postgres"), ("PGDATABASE", &db)],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("public.\"Role\""));
}

fn pgpass_file(content: &str, mode: u32) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), content).unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

#[test]
fn list_with_pgpass_password_over_socket_and_tcp() {
    let c = cluster();
    let db = one_table_db("pgpass");
    c.psql(&db, &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PW_USER}"));
    let f = pgpass_file(
        &format!(
            "# a comment\nnothere:*:*:*:wrong\n{}:{}:{db}:{PW_USER}:{PW_PASSWORD}\n127.0.0.1:*:*:{PW_USER}:{PW_PASSWORD}\n",
            c.dir.display(),
            c.port
        ),
        0o600,
    );
    let path = f.path().to_str().unwrap();
    let conn = format!("host={} port={} user={PW_USER} dbname={db}", c.dir.display(), c.port);
    let r = pgbarge(&["list", "-d", &conn], &[("PGPASSFILE", path)]);
    r.expect_code(0).expect_no_password();
    assert!(r.stdout.contains("public.\"Role\""));

    let tcp = format!("postgresql://{PW_USER}@127.0.0.1:{}/{db}?sslmode=disable", c.port);
    pgbarge(&["list", "-d", &tcp], &[("PGPASSFILE", path)]).expect_code(0).expect_no_password();
}

#[test]
fn group_readable_pgpass_is_ignored_with_warning() {
    let c = cluster();
    let db = one_table_db("pgpass_mode");
    let f = pgpass_file(&format!("*:*:*:{PW_USER}:{PW_PASSWORD}\n"), 0o644);
    let conn = format!("host={} port={} user={PW_USER} dbname={db}", c.dir.display(), c.port);
    let r = pgbarge(&["list", "-d", &conn], &[("PGPASSFILE", f.path().to_str().unwrap())]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("has group or world access"), "{}", r.stderr);
    assert!(r.stderr.contains("password"), "{}", r.stderr);
}

#[test]
fn wrong_password_is_one_clear_error() {
    let c = cluster();
    let db = one_table_db("wrongpw");
    let conn = format!("host={} port={} user={PW_USER} dbname={db}", c.dir.display(), c.port);
    let r = pgbarge(&["list", "-d", &conn], &[("PGPASSWORD", "not-the-Password-1")]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("password authentication failed"), "{}", r.stderr);
    assert!(r.stderr.contains("28P01"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: check the password"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-Password-1"), "{}", r.stderr);
    assert!(!r.stderr.contains("db error"), "{}", r.stderr);
}

#[test]
fn password_in_url_never_printed() {
    let c = cluster();
    let db = one_table_db("pwurl");
    c.psql(&db, &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PW_USER}"));
    let url = format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{db}", c.port);
    let r = pgbarge(&["list", "-d", &url, "--json"], &[]);
    r.expect_code(0).expect_no_password();
    assert!(r.stdout.contains(&format!("postgresql://{PW_USER}@127.0.0.1:{}/{db}", c.port)));
    // A failure that echoes the connection must not print it either.
    let url = format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/nosuchdb", c.port);
    let r = pgbarge(&["list", "-d", &url], &[]);
    r.expect_code(3).expect_no_password();
}

#[test]
fn unknown_host() {
    let r = pgbarge(&["list", "-d", "host=no-such-host.invalid dbname=x connect_timeout=5"], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("cannot connect to postgresql://"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot resolve host name \"no-such-host.invalid\""), "{}", r.stderr);
}

#[test]
fn refused_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = pgbarge(&["list", "-d", &format!("host=127.0.0.1 port={port} dbname=x")], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
    assert!(r.stderr.contains("accepting connections on port"), "{}", r.stderr);
}

#[test]
fn missing_database() {
    let c = cluster();
    let r = pgbarge(&["list", "-d", &c.conn("no_such_db")], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("database \"no_such_db\" does not exist"), "{}", r.stderr);
    assert!(r.stderr.contains("3D000"), "{}", r.stderr);
}

#[test]
fn missing_socket() {
    let r = pgbarge(&["list", "-d", "host=/tmp/no-such-dir port=5999 dbname=x"], &[]);
    r.expect_code(3);
    assert!(
        r.stderr.contains("no server socket at /tmp/no-such-dir/.s.PGSQL.5999"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_sslmode_value_and_unknown_option_are_usage_errors() {
    let r = pgbarge(&["list", "-d", "host=localhost sslmode=verify"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("invalid sslmode value: \"verify\""), "{}", r.stderr);
    let r = pgbarge(&["list", "-d", "hots=localhost"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("invalid connection option \"hots\""), "{}", r.stderr);
}

#[test]
fn unknown_flag_exits_2() {
    let r = pgbarge(&["list", "--no-such-flag"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.stderr);
}

fn tls_conn(host: &str, mode: &str, ca: &str, db: &str) -> String {
    format!(
        "host={host} port={} user=postgres dbname={db} sslmode={mode} sslrootcert={ca}",
        cluster().port
    )
}

#[test]
fn tls_verify_full_with_right_ca() {
    let c = cluster();
    let db = one_table_db("tls_ok");
    let ca = c.ca_cert.display().to_string();
    let r = pgbarge(&["list", "-d", &tls_conn("localhost", "verify-full", &ca, &db)], &[]);
    r.expect_code(0);
    // The session really is encrypted.
    let info =
        Arc::new(resolve(&tls_conn("localhost", "verify-full", &ca, &db), &|_| None).unwrap());
    let ssl: bool = block_on(async {
        let s = connect(&info, Purpose::Data).await.unwrap();
        s.client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert!(ssl);
}

#[test]
fn tls_verify_full_wrong_ca_fails_clearly() {
    let c = cluster();
    let db = one_table_db("tls_wrongca");
    let ca = c.other_ca_cert.display().to_string();
    let r = pgbarge(&["list", "-d", &tls_conn("localhost", "verify-full", &ca, &db)], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("TLS"), "{}", r.stderr);
    assert!(r.stderr.to_lowercase().contains("certificate"), "{}", r.stderr);
    assert!(r.stderr.contains("sslrootcert"), "{}", r.stderr);
}

#[test]
fn tls_verify_full_wrong_host_name_fails_but_verify_ca_passes() {
    let c = cluster();
    let db = one_table_db("tls_wronghost");
    let ca = c.ca_cert.display().to_string();
    let r = pgbarge(&["list", "-d", &tls_conn("127.0.0.1", "verify-full", &ca, &db)], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("not valid for"), "{}", r.stderr);
    pgbarge(&["list", "-d", &tls_conn("127.0.0.1", "verify-ca", &ca, &db)], &[]).expect_code(0);
    // require with a root certificate verifies the chain, like libpq.
    let bad = c.other_ca_cert.display().to_string();
    pgbarge(&["list", "-d", &tls_conn("127.0.0.1", "require", &bad, &db)], &[]).expect_code(3);
    pgbarge(
        &[
            "list",
            "-d",
            &format!("host=127.0.0.1 port={} user=postgres dbname={db} sslmode=require", c.port),
        ],
        &[],
    )
    .expect_code(0);
}

#[test]
fn unreadable_sslrootcert() {
    let c = cluster();
    let r = pgbarge(
        &["list", "-d", &tls_conn("localhost", "verify-full", "/nonexistent/ca.pem", "postgres")],
        &[],
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("cannot read root certificate file \"/nonexistent/ca.pem\""),
        "{}",
        r.stderr
    );
    let _ = c;
}

#[test]
fn sessions_pin_settings_despite_database_defaults() {
    let c = cluster();
    let db = c.create_db("pins");
    for set in [
        "DateStyle = 'SQL, DMY'",
        "search_path = nowhere",
        "extra_float_digits = 0",
        "TimeZone = 'Asia/Tokyo'",
        "IntervalStyle = 'sql_standard'",
        "bytea_output = 'escape'",
        "statement_timeout = '1ms'",
    ] {
        c.psql("postgres", &format!("ALTER DATABASE \"{db}\" SET {set}"));
    }
    let info = Arc::new(resolve(&c.conn(&db), &|_| None).unwrap());
    let got: Vec<String> = block_on(async {
        let s = connect(&info, Purpose::Data).await.unwrap();
        let mut v = Vec::new();
        for q in [
            "SELECT current_setting('DateStyle')",
            "SELECT current_setting('extra_float_digits')",
            "SELECT current_setting('TimeZone')",
            "SELECT current_setting('IntervalStyle')",
            "SELECT current_setting('bytea_output')",
            "SELECT current_setting('client_encoding')",
            "SELECT current_setting('application_name')",
            "SELECT current_setting('search_path')",
            "SELECT '2024-03-01 10:00+00'::timestamptz::text || ' ' || (1::float8/3)::text || ' ' || '1 day 2 hours'::interval::text",
        ] {
            v.push(s.client.query_one(q, &[]).await.unwrap().get(0));
        }
        v
    });
    assert_eq!(
        got,
        vec![
            "ISO, MDY",
            "3",
            "UTC",
            "postgres",
            "hex",
            "UTF8",
            "pgbarge",
            "pg_catalog",
            "2024-03-01 10:00:00+00 0.3333333333333333 1 day 02:00:00"
        ]
    );
}

#[test]
fn user_application_name_is_kept() {
    let c = cluster();
    let info = Arc::new(
        resolve(&c.conn("postgres"), &|k| (k == "PGAPPNAME").then(|| "runbook-7".to_string()))
            .unwrap(),
    );
    let name: String = block_on(async {
        let s = connect(&info, Purpose::Data).await.unwrap();
        s.client.query_one("SELECT current_setting('application_name')", &[]).await.unwrap().get(0)
    });
    assert_eq!(name, "runbook-7");
}

/// Issue: `hostaddr` was taken as the host, so `verify-full` checked the
/// certificate against the address and `.pgpass` matched the address.
#[test]
fn hostaddr_connects_without_lookup_and_host_is_verified_and_matched() {
    let c = cluster();
    let db = one_table_db("hostaddr");
    c.psql(&db, &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PW_USER}"));
    let ca = c.ca_cert.display().to_string();
    let with = |host: &str, mode: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname={db} sslmode={mode} sslrootcert={ca}",
            c.port
        )
    };
    pgbarge(&["list", "-d", &with("localhost", "verify-full")], &[]).expect_code(0);
    // A name that resolves nowhere: connecting works because no lookup is
    // made, and verify-full checks the certificate against that name.
    pgbarge(&["list", "-d", &with("db.invalid", "verify-ca")], &[]).expect_code(0);
    let r = pgbarge(&["list", "-d", &with("db.invalid", "verify-full")], &[]);
    r.expect_code(3);
    assert!(r.stderr.contains("not valid for") && r.stderr.contains("db.invalid"), "{}", r.stderr);
    // The password file matches the host name, not the address.
    let f = pgpass_file(&format!("db.invalid:{}:*:{PW_USER}:{PW_PASSWORD}\n", c.port), 0o600);
    let conn = format!(
        "host=db.invalid hostaddr=127.0.0.1 port={} user={PW_USER} dbname={db} sslmode=disable",
        c.port
    );
    pgbarge(&["list", "-d", &conn], &[("PGPASSFILE", f.path().to_str().unwrap())])
        .expect_code(0)
        .expect_no_password();
}

/// Issue: a URL whose unencoded password holds `/` (or lacks its `@`) echoed
/// part of the password in an "invalid port" error; a malformed escape was
/// taken for a host name.
#[test]
fn malformed_urls_are_bad_usage_and_never_echo_the_password() {
    for url in [
        "postgresql://app:Zq9secret/x@db.example.com/erp",
        "postgresql://app:Zq9secret/erp",
        "postgresql://app:Zq9sec%zzret@db.example.com/erp",
    ] {
        let r = pgbarge(&["list", "-d", url], &[]);
        r.expect_code(2);
        assert!(!r.all().contains("Zq9"), "{url}:\n{}", r.all());
    }
    let r = pgbarge(&["list", "-d", "postgresql://app@db%zz.example.com/erp"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("percent-encoding"), "{}", r.stderr);
}

/// Every session of a run that succeeds ends as a client ends it: the
/// server logs "unexpected EOF on client connection with an open
/// transaction" for one that just disappears with the process, which is
/// noise in a production server's log (it was logged for each backup
/// worker, each extra copy worker, and copy --dry-run's source).
#[test]
fn sessions_of_a_successful_run_end_as_clients_do() {
    let c = cluster();
    let db = c.create_db("clean_session_ends");
    for t in ["a", "b", "c"] {
        c.psql(&db, &format!("CREATE TABLE {t} (id int PRIMARY KEY); INSERT INTO {t} VALUES (1)"));
    }
    let tgt = c.create_db("clean_session_ends_tgt");
    c.psql(&tgt, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY)");
    let (s, t) = (c.conn(&db), c.conn(&tgt));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    let d = dir.to_str().unwrap();
    for args in [
        &["backup", "-q", "-d", &s, "-o", d, "-j", "3"][..],
        &["verify", "-q", d, "-d", &s],
        &["copy", "-q", "--source", &s, "--target", &t, "--dry-run"],
        &["copy", "-q", "--source", &s, "--target", &t, "-j", "3", "--per-table-commit"],
        &["restore", "-q", d, "-d", &t, "--mode", "truncate", "-j", "2", "--per-table-commit"],
        &["restore", "-q", d, "-d", &t, "--mode", "truncate"],
        &["diff", "-q", "--source", &s, "--target", &t],
        &["list", "-q", "-d", &s],
    ] {
        pgbarge(args, &[]).expect_code(0);
    }
    let log = std::fs::read_to_string(c.dir.join("server.log")).unwrap();
    // The target's name starts with the source's: one filter takes both.
    let vanished: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("unexpected EOF") && l.contains(&format!("db={db}")))
        .collect();
    assert!(vanished.is_empty(), "{vanished:#?}");
}
