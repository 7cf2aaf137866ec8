//! Issue: load sessions pinned `search_path = pg_catalog`, so an audit
//! trigger that names its log table unqualified — as applications write them
//! — failed with `relation "RoleAuditLog" does not exist`. Loads now run
//! user code with the target's own search path, and pgbarge's own SQL stays
//! right under any search path, a hostile one included.

use crate::common::{cluster, copy_dbs, pgbarge};

const ROLE: &str = "CREATE TABLE \"Role\" (id int PRIMARY KEY, name text NOT NULL);";

/// The target side: `"Role"` with an audit trigger whose function names
/// `"RoleAuditLog"` without a schema, like the ERP fixture's production one.
const AUDITED: &str = "
    CREATE TABLE \"RoleAuditLog\" (role_id int, op text);
    CREATE FUNCTION role_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO \"RoleAuditLog\" VALUES (NEW.id, TG_OP);
        RETURN NEW;
    END $$;
    CREATE TRIGGER \"Role_audit\" AFTER INSERT OR UPDATE ON \"Role\"
        FOR EACH ROW EXECUTE FUNCTION role_audit();";

fn source(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(
        &db,
        &format!("{ROLE} INSERT INTO \"Role\" VALUES (1, 'admin'), (2, 'clerk'), (3, 'audit')"),
    );
    db
}

fn audited_target(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, &format!("{ROLE} {AUDITED}"));
    db
}

fn audit_rows(db: &str) -> String {
    cluster().psql(
        db,
        "SELECT string_agg(role_id || ':' || op, ',' ORDER BY role_id, op) FROM \"RoleAuditLog\"",
    )
}

#[test]
fn audit_trigger_with_unqualified_names_fires_during_copy_restore_and_upsert() {
    let c = cluster();
    let src = source("sp_src");
    let tgt = audited_target("sp_copy");
    let r = copy_dbs(&src, &tgt, &["-t", "Role"]);
    r.expect_code(0);
    assert_eq!(audit_rows(&tgt), "1:INSERT,2:INSERT,3:INSERT");

    // Upsert: changed rows fire the UPDATE branch of the same trigger.
    c.psql(&src, "UPDATE \"Role\" SET name = 'administrator' WHERE id = 1; INSERT INTO \"Role\" VALUES (4, 'new')");
    let r = copy_dbs(&src, &tgt, &["-t", "Role", "--mode", "upsert"]);
    r.expect_code(0);
    assert_eq!(audit_rows(&tgt), "1:INSERT,1:UPDATE,2:INSERT,2:UPDATE,3:INSERT,3:UPDATE,4:INSERT");

    // Restore from a backup, into a fresh audited target.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bk");
    pgbarge(&["backup", "-q", "-d", &c.conn(&src), "-o", dir.to_str().unwrap()], &[])
        .expect_code(0);
    let fresh = audited_target("sp_restore");
    pgbarge(&["restore", "-q", dir.to_str().unwrap(), "-d", &c.conn(&fresh)], &[]).expect_code(0);
    assert_eq!(audit_rows(&fresh), "1:INSERT,2:INSERT,3:INSERT,4:INSERT");
    // With --mode truncate too, per table commit included.
    pgbarge(
        &[
            "restore",
            "-q",
            dir.to_str().unwrap(),
            "-d",
            &c.conn(&fresh),
            "--mode",
            "truncate",
            "--per-table-commit",
        ],
        &[],
    )
    .expect_code(0);
    assert_eq!(c.psql(&fresh, "SELECT count(*) FROM \"RoleAuditLog\""), "8");
}

#[test]
fn hostile_default_search_path_still_loads_the_right_tables() {
    let c = cluster();
    let src = source("sp_hostile_src");
    let tgt = audited_target("sp_hostile");
    // A schema first in the database's search path, with a table of the same
    // name and functions and operators that shadow pg_catalog's where
    // pg_catalog is listed after it.
    c.psql(
        &tgt,
        &format!(
            "CREATE SCHEMA other;
             CREATE TABLE other.\"Role\" (id int PRIMARY KEY, name text NOT NULL);
             CREATE FUNCTION other.count() RETURNS bigint LANGUAGE sql AS 'SELECT -1::bigint';
             CREATE FUNCTION other.xid_eq_int(xid, int) RETURNS bool LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'shadowed operator called'; END $$;
             CREATE OPERATOR other.= (LEFTARG = xid, RIGHTARG = int, FUNCTION = other.xid_eq_int);
             ALTER DATABASE {tgt} SET search_path = other, pg_catalog, public;"
        ),
    );
    copy_dbs(&src, &tgt, &["-t", "public.Role"]).expect_code(0);
    assert_eq!(c.psql(&tgt, "SELECT pg_catalog.count(*) FROM public.\"Role\""), "3");
    assert_eq!(c.psql(&tgt, "SELECT pg_catalog.count(*) FROM other.\"Role\""), "0");
    // The trigger ran with the database's path and found public."RoleAuditLog".
    assert_eq!(audit_rows(&tgt), "1:INSERT,2:INSERT,3:INSERT");
    // The merge's own count and comparison are pg_catalog's, not other's.
    let r = copy_dbs(&src, &tgt, &["-t", "public.Role", "--mode", "upsert"]);
    r.expect_code(0);
    assert!(!r.all().contains("shadowed"), "{}", r.all());
    assert_eq!(c.psql(&tgt, "SELECT pg_catalog.count(*) FROM other.\"Role\""), "0");
    let r = copy_dbs(&src, &tgt, &["-t", "public.Role", "--mode", "skip"]);
    r.expect_code(0);
    // Truncate and reload, compared by fingerprint before commit.
    let r = copy_dbs(&src, &tgt, &["-t", "public.Role", "--mode", "truncate", "--verify=deep"]);
    r.expect_code(0);
    assert_eq!(c.psql(&tgt, "SELECT pg_catalog.count(*) FROM other.\"Role\""), "0");
}
