//! The ERP fixture: both databases load, `list` sees them in load order, and
//! the migration files turn the target's schema into the source's.

use crate::common::{cluster, db_with, pgbarge};

#[test]
fn source_and_target_load_and_list_in_fk_order() {
    let c = cluster();
    let src = db_with("erp_src", "erp/source.sql");
    let r = pgbarge(&["list", "-d", &c.conn(&src), "--json"], &[]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> =
        v["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 13, "{names:?}");
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    for (child, parent) in [
        ("RolePermission", "Role"),
        ("RolePermission", "Permission"),
        ("RoleAssignment", "User"),
        ("UserPermission", "Permission"),
        ("TimeEntryRejectionNote", "TimeEntry"),
        ("TimeEntry", "Job"),
        ("Job", "Customer"),
    ] {
        assert!(pos(parent) < pos(child), "{parent} before {child}: {names:?}");
    }
    assert_eq!(c.psql(&src, "SELECT count(*) FROM \"User\""), "9");

    let tgt = db_with("erp_tgt", "erp/target.sql");
    let r = pgbarge(&["list", "-d", &c.conn(&tgt), "-t", "Role", "--json"], &[]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["tables"][0]["triggers"].as_array().unwrap().len(), 1, "{}", r.stdout);
}

#[test]
fn migrations_bring_target_to_source_schema() {
    let c = cluster();
    let src = db_with("erp_mig_src", "erp/source.sql");
    let tgt = db_with("erp_mig_tgt", "erp/target.sql");
    crate::common::run_erp_migrations(&tgt);
    let columns = "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                   FROM information_schema.columns WHERE table_schema = 'public' \
                   AND NOT (table_name = 'Role' AND column_name = 'legacyCode') ORDER BY 1";
    assert_eq!(c.psql(&src, columns), c.psql(&tgt, columns));
}
