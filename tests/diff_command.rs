//! `pgbarge diff`: a database against its own schema dump is identical; each
//! kind of difference is found and named by its one-line key; the ERP
//! fixture before and after its migrations; JSON; exit codes.

use crate::common::{Run, cluster, db_with, pgbarge};

/// A schema rich in odd names and every kind of object diff compares.
const RICH: &str = r#"
CREATE SCHEMA "My Schema";
CREATE SCHEMA "dot.ted";
CREATE TYPE "My Schema"."Mood" AS ENUM ('sad', 'ok', 'happy "quoted"');
CREATE DOMAIN public.posint AS integer DEFAULT 1 NOT NULL CHECK (VALUE > 0);
CREATE TYPE public.pair AS (a integer, "B" text);
CREATE SEQUENCE public.odd_seq AS integer INCREMENT BY 3 MINVALUE 5 MAXVALUE 1000 START 7 CYCLE;
CREATE TABLE "My Schema"."Parent Table" (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Name" text COLLATE "C" NOT NULL DEFAULT 'x',
    mood "My Schema"."Mood",
    n public.posint,
    total numeric(10,2),
    doubled numeric GENERATED ALWAYS AS (total * 2) STORED,
    UNIQUE ("Name") DEFERRABLE INITIALLY DEFERRED,
    CHECK (total >= 0)
);
CREATE TABLE "dot.ted"."a.b" (
    id bigserial PRIMARY KEY,
    parent integer REFERENCES "My Schema"."Parent Table"(id) ON DELETE CASCADE ON UPDATE SET NULL,
    "Überstunden" int,
    p public.pair
);
ALTER TABLE "dot.ted"."a.b" ADD CONSTRAINT nv CHECK ("Überstunden" < 100) NOT VALID;
CREATE TABLE public.booking (id int, during tsrange, EXCLUDE USING gist (during WITH &&));
CREATE TABLE public.events (id int, at date NOT NULL, payload jsonb, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_default PARTITION OF public.events DEFAULT;
CREATE INDEX ON public.events (at);
CREATE TABLE public.base (id int, note text);
CREATE TABLE public.child (extra int) INHERITS (public.base);
CREATE UNLOGGED TABLE public.scratch (x int);
CREATE INDEX "weird idx" ON "dot.ted"."a.b" (("Überstunden" + 1)) WHERE id > 5;
CREATE FUNCTION "My Schema".touch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER "Touch it" BEFORE UPDATE ON "My Schema"."Parent Table"
    FOR EACH ROW WHEN (OLD."Name" IS DISTINCT FROM NEW."Name") EXECUTE FUNCTION "My Schema".touch();
CREATE TRIGGER ev BEFORE INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION "My Schema".touch();
CREATE PROCEDURE public.p(a int) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE VIEW public."View ""q""" AS SELECT id, "Name" FROM "My Schema"."Parent Table" WHERE id > 1;
CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) AS n FROM public.base;
CREATE INDEX ON public.mv (n);
ALTER TABLE public.base ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own rows" ON public.base FOR SELECT USING (id > 0);
"#;

fn diff(source: &str, target: &str, extra: &[&str]) -> Run {
    let c = cluster();
    let (s, t) = (c.conn(source), c.conn(target));
    let mut a = vec!["diff", "--source", &s, "--target", &t];
    a.extend(extra);
    pgbarge(&a, &[])
}

fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().collect()
}

/// A database with [`RICH`], and a second made from it by
/// `pg_dump --schema-only | psql`.
fn rich_and_dump(test: &str) -> (String, String) {
    let c = cluster();
    let src = c.create_db(&format!("{test}_src"));
    c.psql(&src, RICH);
    let tgt = c.create_db(&format!("{test}_tgt"));
    let out = c.pg_dump_cmd(&src).arg("--schema-only").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = c.dir.join(format!("{tgt}.sql"));
    std::fs::write(&file, &out.stdout).unwrap();
    c.psql_file(&tgt, &file);
    (src, tgt)
}

#[test]
fn a_database_matches_its_own_schema_dump() {
    let (src, tgt) = rich_and_dump("diff_same");
    let r = diff(&src, &tgt, &[]);
    r.expect_code(0);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.ends_with(": 0 differences"), "{}", r.stdout);
    for part in ["schemas 3 = 3", "tables 9 = 9", "triggers 2 = 2", "foreign keys 1 = 1"] {
        assert!(r.stdout.contains(part), "{part}: {}", r.stdout);
    }
    // Every flag at once still finds the dump identical.
    let r = diff(&src, &tgt, &["--names", "--column-order", "--versions", "--comments"]);
    r.expect_code(0);

    let r = diff(&src, &tgt, &["--json"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["identical"], true);
    assert_eq!(v["differences"].as_array().unwrap().len(), 0);
    let tables = v["counts"].as_array().unwrap().iter().find(|c| c["kind"] == "table").unwrap();
    assert_eq!((tables["source"].as_u64(), tables["target"].as_u64()), (Some(9), Some(9)));
}

#[test]
fn each_kind_of_difference_is_found_and_named() {
    let c = cluster();
    let src = c.create_db("diff_kinds_src");
    c.psql(&src, RICH);
    let tgt = c.create_db("diff_kinds_tgt");
    c.psql(&tgt, RICH);
    // One change per case on the target, and the key it must produce.
    let cases: &[(&str, &str)] = &[
        ("ALTER TABLE public.scratch ADD COLUMN y int", "only in target: column public.scratch.y"),
        (
            "ALTER TABLE public.child ALTER COLUMN extra TYPE bigint",
            "differs: column public.child.extra: type",
        ),
        (
            r#"ALTER TABLE "dot.ted"."a.b" ALTER COLUMN "Überstunden" SET NOT NULL"#,
            r#"differs: column "dot.ted"."a.b"."Überstunden": nullability"#,
        ),
        (
            r#"ALTER TABLE "My Schema"."Parent Table" ALTER COLUMN "Name" SET DEFAULT 'y'"#,
            r#"differs: column "My Schema"."Parent Table"."Name": default"#,
        ),
        (
            r#"ALTER TABLE public.base ALTER COLUMN note TYPE text COLLATE "POSIX""#,
            "differs: column public.base.note: collation",
        ),
        (
            r#"ALTER TABLE "My Schema"."Parent Table" ALTER COLUMN id SET GENERATED BY DEFAULT"#,
            r#"differs: column "My Schema"."Parent Table".id: identity"#,
        ),
        (
            "ALTER TABLE public.booking DROP CONSTRAINT booking_during_excl",
            "only in source: exclusion public.booking EXCLUDE USING gist (during WITH &&)",
        ),
        (
            r#"ALTER TABLE "dot.ted"."a.b" VALIDATE CONSTRAINT nv"#,
            r#"only in target: check "dot.ted"."a.b" CHECK (("Überstunden" < 100))"#,
        ),
        (
            r#"ALTER TABLE "dot.ted"."a.b" DROP CONSTRAINT "a.b_parent_fkey",
               ADD FOREIGN KEY (parent) REFERENCES "My Schema"."Parent Table"(id) ON DELETE RESTRICT"#,
            r#"only in target: foreign key "dot.ted"."a.b" FOREIGN KEY (parent) REFERENCES "My Schema"."Parent Table"(id) ON DELETE RESTRICT"#,
        ),
        (
            r#"ALTER TABLE "My Schema"."Parent Table" DROP CONSTRAINT "Parent Table_Name_key""#,
            r#"only in source: unique "My Schema"."Parent Table" UNIQUE ("Name") DEFERRABLE INITIALLY DEFERRED"#,
        ),
        (
            r#"DROP INDEX "dot.ted"."weird idx""#,
            r#"only in source: index CREATE INDEX ON "dot.ted"."a.b" USING btree ((("Überstunden" + 1))) WHERE (id > 5)"#,
        ),
        (
            r#"ALTER TABLE "My Schema"."Parent Table" DISABLE TRIGGER "Touch it""#,
            r#"differs: trigger "My Schema"."Parent Table"."Touch it": enabled"#,
        ),
        (
            r#"CREATE OR REPLACE FUNCTION "My Schema".touch() RETURNS trigger LANGUAGE plpgsql
               SET search_path = pg_catalog AS $$ BEGIN RETURN NEW; END $$"#,
            r#"differs: function "My Schema".touch(): definition"#,
        ),
        ("DROP PROCEDURE public.p(int)", "only in source: procedure public.p(IN a integer)"),
        (
            r#"CREATE OR REPLACE VIEW public."View ""q""" AS SELECT id, "Name" FROM "My Schema"."Parent Table" WHERE id > 2"#,
            r#"differs: view public."View ""q""": definition"#,
        ),
        ("DROP MATERIALIZED VIEW public.mv", "only in source: materialized view public.mv"),
        (
            r#"ALTER TYPE "My Schema"."Mood" ADD VALUE 'meh'"#,
            r#"differs: enum "My Schema"."Mood": labels"#,
        ),
        ("ALTER DOMAIN public.posint DROP DEFAULT", "differs: domain public.posint: default"),
        (
            "ALTER TYPE public.pair ADD ATTRIBUTE c int",
            "differs: composite type public.pair: attributes",
        ),
        (
            "ALTER SEQUENCE public.odd_seq INCREMENT BY 4",
            "differs: sequence public.odd_seq: increment",
        ),
        (
            "ALTER TABLE public.base FORCE ROW LEVEL SECURITY",
            "differs: table public.base: row level security",
        ),
        ("ALTER TABLE public.scratch SET LOGGED", "differs: table public.scratch: persistence"),
        (
            r#"DROP POLICY "own rows" ON public.base"#,
            r#"only in source: policy public.base."own rows""#,
        ),
        ("CREATE SCHEMA extra", "only in target: schema extra"),
        ("DROP TABLE public.events_default", "only in source: table public.events_default"),
        (
            "ALTER TABLE public.child NO INHERIT public.base",
            "differs: table public.child: inherits",
        ),
        (
            r#"ALTER TABLE "My Schema"."Parent Table" ALTER COLUMN doubled DROP EXPRESSION"#,
            r#"differs: column "My Schema"."Parent Table".doubled: generated"#,
        ),
        (
            "ALTER TABLE public.events DETACH PARTITION public.events_2024;
             ALTER TABLE public.events ATTACH PARTITION public.events_2024
                 FOR VALUES FROM ('2024-01-01') TO ('2024-12-31')",
            "differs: table public.events_2024: partition bound",
        ),
    ];
    for (sql, _) in cases {
        c.psql(&tgt, sql);
    }
    // Reading the sequence moves no definition.
    c.psql(&src, "SELECT nextval('public.odd_seq'), nextval('public.odd_seq')");
    let r = diff(&src, &tgt, &[]);
    r.expect_code(1);
    let got = lines(&r);
    for (sql, key) in cases {
        assert!(got.contains(key), "{sql}\nwants {key}\n{}", r.stdout);
    }
    // Both sides of a difference are shown under its key.
    let at = got.iter().position(|l| *l == "differs: column public.child.extra: type").unwrap();
    assert_eq!(got[at + 1..at + 3], ["  source: integer", "  target: bigint"]);
    assert!(r.stdout.lines().last().unwrap().contains("tables 9 != 8"), "{}", r.stdout);

    // -t restricts table-level objects only.
    let r = diff(&src, &tgt, &["-t", "scratch"]);
    r.expect_code(1);
    assert!(lines(&r).contains(&"only in target: column public.scratch.y"), "{}", r.stdout);
    assert!(!r.stdout.contains("public.child.extra"), "{}", r.stdout);
    assert!(r.stdout.contains("differs: enum"), "{}", r.stdout);
    // --schema restricts everything.
    let r = diff(&src, &tgt, &["--schema", "dot.ted"]);
    r.expect_code(1);
    let keys: Vec<&str> = r.stdout.lines().filter(|l| !l.starts_with("  ")).collect();
    for k in &keys[..keys.len() - 1] {
        assert!(k.contains("\"dot.ted\"."), "{k}\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("public.scratch"), "{}", r.stdout);
}

#[test]
fn names_comments_and_column_order_count_only_when_asked() {
    let c = cluster();
    let src = c.create_db("diff_flags_src");
    c.psql(&src, "CREATE TABLE t (a int, b int CHECK (b > 0)); CREATE INDEX t_a ON t (a)");
    let tgt = c.create_db("diff_flags_tgt");
    c.psql(
        &tgt,
        "CREATE TABLE t (b int, a int); ALTER TABLE t ADD CONSTRAINT renamed CHECK (b > 0);
         CREATE INDEX other_name ON t (a); COMMENT ON TABLE t IS 'note';
         GRANT SELECT ON t TO PUBLIC; ALTER TABLE t OWNER TO pwuser",
    );
    diff(&src, &tgt, &[]).expect_code(0);
    let r =
        diff(&src, &tgt, &["--names", "--comments", "--column-order", "--owners", "--privileges"]);
    r.expect_code(1);
    let got = lines(&r);
    for key in [
        "only in source: check public.t.t_b_check",
        "only in target: check public.t.renamed",
        "only in source: index public.t_a",
        "only in target: index public.other_name",
        "differs: table public.t: comment",
        "differs: column public.t.a: position",
        "differs: table public.t: owner",
        "differs: table public.t: privileges",
    ] {
        assert!(got.contains(&key), "{key}\n{}", r.stdout);
    }
}

/// The keys the ERP fixture's migrations leave: what the plan's diff step allows.
const ERP_KEPT: &[&str] = &[r#"only in target: column public."Role"."legacyCode""#];

#[test]
fn the_erp_migrations_fix_every_difference_but_the_kept_column() {
    let src = db_with("diff_erp_src", "erp/source.sql");
    let tgt = db_with("diff_erp_tgt", "erp/target.sql");
    let r = diff(&src, &tgt, &[]);
    r.expect_code(1);
    let got = lines(&r);
    for key in [
        r#"only in source: table public."OvertimeSettings""#,
        r#"only in source: table public."FileAttachment""#,
        r#"only in source: column public."TimeEntryRejectionNote"."resolvedAt""#,
        r#"differs: column public."TimeEntry"."isBillable": nullability"#,
        r#"differs: column public."TimeEntry"."isBillable": default"#,
        r#"only in source: check public."TimeEntry" CHECK (((hours > (0)::numeric) AND (hours <= (24)::numeric)))"#,
        r#"only in source: index CREATE INDEX ON public."TimeEntry" USING btree ("userId", "workDate")"#,
        r#"only in source: trigger public."User"."User_set_updated_at""#,
        r#"only in source: function public.set_updated_at()"#,
        r#"differs: function public.audit_row_change(): definition"#,
        ERP_KEPT[0],
    ] {
        assert!(got.contains(&key), "{key}\n{}", r.stdout);
    }
    assert!(got.last().unwrap().contains("tables 13 != 11"), "{}", r.stdout);

    crate::common::run_erp_migrations(&tgt);
    let r = diff(&src, &tgt, &["--json"]);
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys: Vec<&str> =
        v["differences"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ERP_KEPT, "{}", r.stdout);
    assert_eq!(v["identical"], false);
    assert_eq!(v["differences"][0]["status"], "only_in_target");
    assert_eq!(v["differences"][0]["target"]["type"], "text");
    // Column order differs too, reported only when asked.
    let r = diff(&src, &tgt, &["--column-order"]);
    assert!(
        r.stdout.contains(r#"differs: column public."Role".description: position"#),
        "{}",
        r.stdout
    );
}

#[test]
fn exit_codes_for_usage_and_connection_errors() {
    let c = cluster();
    let db = c.create_db("diff_codes");
    let r = diff(&db, &db, &["--no-such-flag"]);
    r.expect_code(2);
    let r = diff(&db, &db, &["-t", "nothing_like_this"]);
    r.expect_code(2);
    assert!(r.stderr.contains("nothing_like_this"), "{}", r.stderr);
    let r = pgbarge(
        &["diff", "--source", &c.conn(&db), "--target", "host=127.0.0.1 port=1 dbname=x user=u"],
        &[],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("TARGET"), "{}", r.stderr);
    diff(&db, &db, &[]).expect_code(0);
}

#[test]
fn a_plan_diff_step_passes_with_its_allowed_differences_and_warns_of_stale_ones() {
    let c = cluster();
    let src = c.create_db("diff_step_src");
    c.psql(&src, "CREATE TABLE t (a int)");
    let tgt = c.create_db("diff_step_tgt");
    c.psql(&tgt, "CREATE TABLE t (a int, legacy text)");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let write = |allow: &str| {
        std::fs::write(
            &plan,
            format!(
                "name = \"d\"\nlog_dir = \"runs\"\n[connections]\nsrc = {{ env = \"S\" }}\ntgt = {{ env = \"T\" }}\n\
                 [[steps]]\nname = \"same\"\nkind = \"diff\"\nsource = \"src\"\ntarget = \"tgt\"\nallow = [{allow}]\n"
            ),
        )
        .unwrap();
    };
    let (s, t) = (c.conn(&src), c.conn(&tgt));
    let env = [("S", s.as_str()), ("T", t.as_str())];
    let run = |extra: &[&str]| {
        let mut a = vec!["run", plan.to_str().unwrap()];
        a.extend(extra);
        pgbarge(&a, &env)
    };

    write("");
    let r = run(&["--dry-run"]);
    r.expect_code(0);
    assert!(r.stdout.contains("step 1 same (diff): checked"), "{}", r.stdout);
    let r = run(&[]);
    r.expect_code(1);
    assert!(r.stdout.contains("only in target: column public.t.legacy"), "{}", r.stdout);
    assert!(r.stderr.contains("step same found differences"), "{}", r.stderr);

    write("'only in target: column public.t.legacy', 'differs: column public.t.a: type'");
    let r = run(&[]);
    r.expect_code(0);
    assert!(r.stdout.contains("  allowed by the plan"), "{}", r.stdout);
    assert!(
        r.stdout.contains("warning: allowed but not found: differs: column public.t.a: type"),
        "{}",
        r.stdout
    );
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.last().unwrap().join("run.json")).unwrap())
            .unwrap();
    let details = &json["steps"][0]["details"];
    assert_eq!(details["allowed"][0], "only in target: column public.t.legacy");
    assert!(details["warning"].as_str().unwrap().contains("differs: column public.t.a: type"));
}

/// Never waiting forever (DESIGN.md): printing a default expression opens
/// its table, so a table another session holds exclusively is waited for at
/// most `--lock-wait-timeout`, then the error names the lock timeout.
#[test]
fn a_table_held_exclusively_is_waited_for_at_most_the_lock_wait_timeout() {
    let c = cluster();
    let db = c.create_db("diff_locked");
    c.psql(&db, "CREATE TABLE t (id int DEFAULT 1, v text)");
    let mut holder = c
        .psql_cmd(&db)
        .arg("-c")
        .arg("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock' AND l.granted";
    for _ in 0..400 {
        if c.psql(&db, held) == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let start = std::time::Instant::now();
    let r = diff(&db, &db, &["--lock-wait-timeout", "1"]);
    let elapsed = start.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    r.expect_code(3);
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
    assert!(r.stderr.contains("lock timeout"), "{}", r.stderr);
    assert!(r.stderr.contains("--lock-wait-timeout"), "{}", r.stderr);
}
