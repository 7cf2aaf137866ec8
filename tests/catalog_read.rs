//! The catalog as read from a real server: columns, keys, partitions,
//! inheritance, generated and identity columns, sequences, FKs and cycles.

use std::sync::Arc;

use crate::common::{block_on, cluster};
use pgbarge::catalog::{Identity, TableKind, read_catalog};
use pgbarge::conn::conninfo::resolve;
use pgbarge::conn::session::{Purpose, connect};
use pgbarge::ident::TableName;

const SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('ok', 'meh');
CREATE SEQUENCE app.shared_seq;
CREATE TABLE app."Parent" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE,
    mood app.mood,
    doubled bigint GENERATED ALWAYS AS (id * 2) STORED,
    n integer DEFAULT nextval('app.shared_seq')
);
CREATE TABLE app.child (
    id serial PRIMARY KEY,
    parent_id bigint REFERENCES app."Parent"(id),
    boss int REFERENCES app.child(id)
);
CREATE TABLE app.a (id int PRIMARY KEY, b_id int);
CREATE TABLE app.b (id int PRIMARY KEY, a_id int REFERENCES app.a(id) DEFERRABLE);
ALTER TABLE app.a ADD FOREIGN KEY (b_id) REFERENCES app.b(id) DEFERRABLE;
CREATE TABLE app.events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.animal (id int, name text);
CREATE TABLE app.dog (bark text) INHERITS (app.animal);
CREATE TABLE app.nokey (x text);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER touch_child BEFORE INSERT ON app.child FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.v AS SELECT 1;
CREATE MATERIALIZED VIEW app.mv AS SELECT 1;
"#;

#[test]
fn reads_tables_columns_keys_sequences_and_order() {
    let c = cluster();
    let db = c.create_db("catalog");
    c.psql(&db, SCHEMA);
    let info = Arc::new(resolve(&c.conn(&db), &|_| None).unwrap());
    let cat = block_on(async {
        let s = connect(&info, Purpose::Data).await.unwrap();
        read_catalog(&s).await.unwrap()
    });
    let names: Vec<String> = cat.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(
        names,
        vec![
            "app.\"Parent\"",
            "app.a",
            "app.animal",
            "app.b",
            "app.child",
            "app.dog",
            "app.events",
            "app.nokey"
        ]
    );

    let parent = cat.find(&TableName::new("app", "Parent")).unwrap();
    assert_eq!(parent.kind, TableKind::Plain);
    assert_eq!(parent.columns.len(), 5);
    assert_eq!(parent.columns[0].identity, Some(Identity::Always));
    assert_eq!(parent.columns[2].type_name, "app.mood");
    assert!(parent.columns[3].generated);
    assert_eq!(parent.data_columns().count(), 4);
    assert!(parent.columns[1].not_null);
    assert_eq!(parent.best_key().unwrap().columns, vec!["id"]);
    assert_eq!(parent.keys.len(), 2);
    let seqs: Vec<(String, String, bool)> =
        parent.sequences.iter().map(|s| (s.column.clone(), s.sequence.clone(), s.owned)).collect();
    assert_eq!(
        seqs,
        vec![
            ("id".into(), "app.\"Parent_id_seq\"".into(), true),
            ("n".into(), "app.shared_seq".into(), false),
        ]
    );

    let child = cat.find(&TableName::new("app", "child")).unwrap();
    assert_eq!(child.sequences.len(), 1);
    assert!(child.sequences[0].owned);
    assert_eq!(child.triggers, vec!["touch_child"]);

    let events = cat.find(&TableName::new("app", "events")).unwrap();
    assert_eq!(events.kind, TableKind::Partitioned);
    assert_eq!(events.partitions.len(), 2);
    assert_eq!(events.best_key().unwrap().columns, vec!["id", "at"]);
    assert_eq!(cat.partitions.len(), 2);

    let animal = cat.find(&TableName::new("app", "animal")).unwrap();
    assert_eq!(animal.kind, TableKind::InheritanceParent);

    let all: Vec<_> = cat.tables.iter().collect();
    let order = cat.load_order(&all);
    let pos = |n: &str| order.order.iter().position(|t| t.name == n).unwrap();
    assert!(pos("Parent") < pos("child"));
    assert_eq!(order.cycles.len(), 1);
    assert_eq!(order.cycles[0].iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(order.self_referencing, vec![TableName::new("app", "child")]);
    assert!(
        cat.foreign_keys
            .iter()
            .filter(|f| f.child.name == "a" || f.child.name == "b")
            .all(|f| f.deferrable)
    );
}
