//! Restore sends the server COPY binary (tables whose every type is covered)
//! or COPY text made from the backup's CSV. Checked against the server, not
//! against the transcoders themselves: tables of odd values restored by
//! pgbarge equal the same CSV loaded by the server's own CSV parser, column
//! by column.

use crate::common::{cluster, pgbarge};

const WIDE: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'très bien');
CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100);
CREATE TYPE pair AS (a int, b text);
CREATE TABLE wide (
    n serial PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint, num numeric, f4 real, f8 double precision,
    b boolean, t text, vc varchar(20), ch char(3), by bytea, u uuid,
    d date, ts timestamp, tstz timestamptz, tm time, tmtz timetz, iv interval,
    j json, jb jsonb, arr text[], ia int[], ip inet, cid cidr, mac macaddr, pt point,
    bits bit(4), vbits varbit, tsv tsvector, m mood, dom short_text, p pair, r int4range,
    x xml, mon money, o oid
);
INSERT INTO wide (i2, i4, i8, num, f4, f8, b, t, vc, ch, by, u, d, ts, tstz, tm, tmtz, iv,
                  j, jb, arr, ia, ip, cid, mac, pt, bits, vbits, tsv, m, dom, p, r, x, mon, o)
VALUES
 (-32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', '-Infinity', true,
  E'\\\\N', 'ab,cd', 'x', E'\\\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '-infinity', '4713-01-01 00:00:00 BC', 'infinity', '24:00:00', '23:59:59+14', '-178000000 years',
  '{\"a\": [1, 2.50, \"\\\\u0000x\"]}', '{\"b\": null, \"a\": \"é\\\\n\"}', ARRAY['x,y', NULL, 'q\"uote', 'back\\\\slash', ''],
  ARRAY[1, NULL, 3], '::1', '10.0.0.0/8', '08:00:2b:01:02:03', '(1.5,-2)', B'1010', B'',
  'a:1 fat:2 rat', 'très bien', '', ROW(1, 'x,y'), '[1,10)', '<a>x</a>', '-12.34', 4294967295),
 (32767, 2147483647, 9223372036854775807, '-123456789012345678901234567890.000000000000000000001',
  '-0', '1.7976931348623157e308', false,
  E'\\\\.', E'tab\\there', 'é', '\\\\x', '00000000-0000-0000-0000-000000000000',
  '5874897-12-31', '294276-12-31 23:59:59.999999', '-infinity', '00:00:00.000001', '00:00:00-12:34:56',
  '1 mon 2 days 00:00:00.5',
  'null', '[]', '{}', '{}', '192.168.0.1/24', '::/0', 'ff:ff:ff:ff:ff:ff', '(0,0)', B'0000', B'1',
  '', 'sad', 'ok', ROW(NULL, NULL), 'empty', '<b/>', '0', 0),
 (0, 0, 0, '0.00', 'Infinity', '2.2250738585072014e-308', NULL,
  E'line1\\nline2\\r\\nline3 \\\\. end', E'\\r', ' ', '', gen_random_uuid(),
  '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', '12:00', '12:00+00', '0',
  '\"\"', '\"\\\\\\\\\"', ARRAY[E'\\n', E'\\\\.', 'NULL'], NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, 'ok', NULL, ROW(0, ''), '(,)', NULL, NULL, NULL),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', '', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL);
CREATE TABLE covered (
    n serial PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, num numeric, num2 numeric(12,2),
    f4 real, f8 double precision, b boolean, t text, vc varchar(20), ch char(3), j json, jb jsonb,
    u uuid, d date, ts timestamp, tstz timestamptz
);
INSERT INTO covered (i2, i4, i8, num, num2, f4, f8, b, t, vc, ch, j, jb, u, d, ts, tstz) VALUES
 (-32768, -2147483648, -9223372036854775808, 'NaN', -9999999999.99, 'NaN', '-Infinity', true,
  E'\\\\N', 'ab,cd', 'x', '{\"a\": [1, 2.50]}', '{\"b\": null, \"a\": \"é\\\\n\"}',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '-infinity', '4713-01-01 00:00:00 BC', 'infinity'),
 (32767, 2147483647, 9223372036854775807, '-123456789012345678901234567890.000000000000000000001',
  0.01, '-0', '1.7976931348623157e308', false, E'\\\\.', E'tab\\there', 'é', 'null', '[]',
  '00000000-0000-0000-0000-000000000000', '5874897-12-31', '294276-12-31 23:59:59.999999',
  '-infinity'),
 (0, 0, 0, '0.00000000', 0, 'Infinity', '4.9406564584124654e-324', NULL,
  E'line1\\nline2\\r\\nline3 \\\\. end', E'\\r', ' ', '\"\"', '\"\\\\\\\\\"', gen_random_uuid(),
  '2000-01-01', '1999-12-31 23:59:59.999999', '1970-01-01 00:00:00.000001+00'),
 (1, 10000, 100000000, '10000', 100, 1.17549435e-38, 2.2250738585072014e-308, true,
  '', '', '', '{}', '{}', gen_random_uuid(), '0001-01-01', '0001-01-01 00:00:00',
  '4714-11-24 00:00:00+00 BC'),
 (NULL, NULL, NULL, '0.0001', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '2024-02-29 12:34:56.5+00'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL);
INSERT INTO covered (num, ts, tstz)
SELECT (random() * 10 ^ (g % 30) - 10 ^ (g % 17))::numeric(60, 20) / 7,
       timestamp '2000-01-01' + g * interval '37 days 3 hours 1.000001 seconds' * (g % 3 - 1),
       timestamptz '1900-06-15 12:00:00+00' + g * interval '13 days 5 minutes'
FROM generate_series(1, 2000) g;
CREATE TABLE single (t text);
INSERT INTO single VALUES (NULL), (''), (E'\\\\.'), ('\\.'), (E'a\\tb');
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
";

/// The rows of `from` (a table or a subquery) as text, in a stable order:
/// equal means equal content.
fn content(db: &str, from: &str) -> String {
    cluster().psql(
        db,
        &format!(
            "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM {from} t"
        ),
    )
}

#[test]
fn restored_text_and_binary_equal_the_csv_loaded_by_the_server() {
    let c = cluster();
    let src = c.create_db("transcode_src");
    c.psql(&src, WIDE);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let dir_s = dir.to_str().unwrap();
    pgbarge(
        &["backup", "-d", &c.conn(&src), "-o", dir_s, "--schema", "--compress", "none", "-q"],
        &[],
    )
    .expect_code(0);

    // pgbarge's restore, through the transcoder.
    let ours = c.create_db("transcode_ours");
    let run = pgbarge(&["restore", dir_s, "-d", &c.conn(&ours), "--schema"], &[]);
    run.expect_code(0);
    // Which format each table went in: binary where every type is covered.
    for (table, format) in [("covered", "binary"), ("wide", "text"), ("no_columns", "text")] {
        let line =
            run.stdout.lines().find(|l| l.contains(&format!("public.{table} "))).unwrap_or("");
        assert!(line.contains(format), "{table}: {format}\n{}", run.stdout);
    }
    pgbarge(&["verify", dir_s, "-d", &c.conn(&ours), "--deep"], &[]).expect_code(0);

    // The same CSV files through the server's CSV parser.
    let theirs = c.create_db("transcode_theirs");
    let pre = std::fs::read_to_string(dir.join("schema-pre.sql")).unwrap();
    let pre: String = pre.lines().filter(|l| !l.starts_with('\\')).collect::<Vec<_>>().join("\n");
    c.psql(&theirs, &pre);
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let table = name.split('.').nth(2).unwrap();
        let out = c
            .psql_cmd(&theirs)
            .arg("-c")
            .arg(format!("\\copy public.{table} from '{}' (format csv, header)", file.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    for table in ["wide", "covered", "single", "no_columns"] {
        assert_eq!(content(&ours, table), content(&theirs, table), "{table}");
        assert_eq!(content(&ours, table), content(&src, table), "{table}");
    }
    // Column by column, so a difference names its type.
    for table in ["wide", "covered"] {
        let columns = c.psql(
            &src,
            &format!(
                "SELECT string_agg(attname, ' ' ORDER BY attnum) FROM pg_attribute \
                 WHERE attrelid = '{table}'::regclass AND attnum > 0"
            ),
        );
        for col in columns.split(' ') {
            let q = format!("(SELECT {col} FROM {table})");
            assert_eq!(content(&ours, &q), content(&src, &q), "{table}.{col}");
        }
    }
}
