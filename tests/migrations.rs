//! Migrations: kept in pairs with the same names, they apply, revert and re-apply
//! on both backends, and both backends end with the same tables and columns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use diesel::prelude::*;
use patchwarden::db::{self, DatabaseUrl, DbConnection};
use support::{backends, database_for, Backend};

fn migration_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migrations_come_in_pairs_with_up_and_down() {
    let sqlite = migration_names("migrations/sqlite");
    let postgres = migration_names("migrations/postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "every migration needs a twin under the other backend");
    for backend in ["sqlite", "postgres"] {
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("migrations/{backend}/{name}/{file}"));
                assert!(path.is_file(), "missing {}", path.display());
            }
        }
    }
}

/// Table → column names, as the backend reports them.
fn columns(conn: &mut DbConnection) -> BTreeMap<String, Vec<String>> {
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut map = BTreeMap::new();
    for table in db::table_names(conn).unwrap() {
        let sql = match conn {
            DbConnection::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            DbConnection::Postgres(_) => format!(
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
            ),
        };
        let cols: Vec<Column> = diesel::sql_query(sql).load(conn).unwrap();
        map.insert(table, cols.into_iter().map(|c| c.name).collect());
    }
    map
}

#[test]
fn migrations_apply_revert_and_reapply_on_every_backend() {
    let mut schemas = Vec::new();
    for backend in backends() {
        support::on_backend(backend);
        let dir = tempfile::tempdir().unwrap();
        let (url, _pg) = database_for(backend, &dir);
        let mut conn = db::establish(&DatabaseUrl::parse(&url).unwrap()).unwrap();

        let applied = db::run_migrations(&mut conn).unwrap();
        assert_eq!(applied.len(), migration_names("migrations/sqlite").len(), "{backend:?}");
        let schema = columns(&mut conn);
        assert!(
            schema.contains_key("users") && schema.contains_key("api_tokens"),
            "{backend:?}: {schema:?}"
        );
        assert!(
            db::run_migrations(&mut conn).unwrap().is_empty(),
            "{backend:?}: applying twice is a no-op"
        );

        let reverted = db::revert_all_migrations(&mut conn).unwrap();
        assert_eq!(reverted.len(), applied.len());
        assert_eq!(
            db::table_names(&mut conn).unwrap(),
            Vec::<String>::new(),
            "{backend:?}: down leaves tables behind"
        );

        db::run_migrations(&mut conn).unwrap();
        assert_eq!(columns(&mut conn), schema, "{backend:?}: re-applied schema differs");
        schemas.push((backend, schema));
    }
    if let [(Backend::Sqlite, sqlite), (Backend::Postgres, postgres)] = schemas.as_slice() {
        assert_eq!(sqlite, postgres, "the two backends' schemas differ");
    }
}
