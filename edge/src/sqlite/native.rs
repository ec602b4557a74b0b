//! [`Sql`] over `rusqlite` (everything but wasm32): what the engines' native tests and
//! benchmarks run on, and what a rebuilt shard file can be read with. One connection, used
//! from one thread, like a Durable Object's storage.

use super::{Arg, Counters, Row, Sql, SqlError};
use rusqlite::types::{Value as SqlValue, ValueRef};
use std::cell::Cell;
use std::path::Path;

/// A SQLite database through rusqlite.
pub struct NativeSql {
    conn: rusqlite::Connection,
    read: Cell<u64>,
    written: Cell<u64>,
}

fn err(e: rusqlite::Error) -> SqlError {
    SqlError::new(e.to_string())
}

impl NativeSql {
    /// A fresh in-memory database.
    pub fn memory() -> Result<NativeSql, SqlError> {
        Self::wrap(rusqlite::Connection::open_in_memory().map_err(err)?)
    }

    /// A database file (created when missing).
    pub fn open(path: &Path) -> Result<NativeSql, SqlError> {
        Self::wrap(rusqlite::Connection::open(path).map_err(err)?)
    }

    fn wrap(conn: rusqlite::Connection) -> Result<NativeSql, SqlError> {
        // as in a Durable Object: foreign keys are not used, journal in memory is enough for
        // tests; the page cache is left as SQLite's default
        conn.set_prepared_statement_cache_capacity(256);
        Ok(NativeSql {
            conn,
            read: Cell::new(0),
            written: Cell::new(0),
        })
    }

    /// The connection itself (for tests' ad-hoc checks).
    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

fn bind(args: &[Arg]) -> Vec<SqlValue> {
    args.iter()
        .map(|a| match a {
            Arg::Null => SqlValue::Null,
            Arg::Int(i) => SqlValue::Integer(*i),
            Arg::Real(f) => SqlValue::Real(*f),
            Arg::Text(s) => SqlValue::Text(s.clone()),
            Arg::Blob(b) => SqlValue::Blob(b.clone()),
        })
        .collect()
}

fn json(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
    }
}

impl Sql for NativeSql {
    fn query(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, SqlError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let params = bind(args);
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let mut obj = Row::new();
            for (i, name) in names.iter().enumerate() {
                obj.insert(name.clone(), json(row.get_ref(i).map_err(err)?));
            }
            out.push(obj);
        }
        drop(rows);
        self.read.set(self.read.get() + out.len() as u64);
        let changed = if stmt.readonly() {
            0
        } else {
            self.conn.changes()
        };
        self.written.set(self.written.get() + changed);
        Ok(out)
    }

    fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, SqlError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
        let params = bind(args);
        let readonly = stmt.readonly();
        let n = if stmt.column_count() > 0 {
            // a statement with rows (a RETURNING clause, a pragma): step through them
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
            let mut k = 0u64;
            while rows.next().map_err(err)?.is_some() {
                k += 1;
            }
            self.read.set(self.read.get() + k);
            if readonly {
                0
            } else {
                self.conn.changes()
            }
        } else {
            stmt.execute(rusqlite::params_from_iter(params))
                .map_err(|e| SqlError::new(format!("{e} in: {sql}")))? as u64
        };
        let n = if readonly { 0 } else { n };
        self.written.set(self.written.get() + n);
        Ok(n)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| E::from(err(e)))?;
        match f() {
            Ok(v) => {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| E::from(err(e)))?;
                Ok(v)
            }
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK")
                    .map_err(|e| E::from(err(e)))?;
                Err(e)
            }
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            rows_read: self.read.get(),
            rows_written: self.written.get(),
        }
    }

    fn database_size(&self) -> u64 {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0);
        let size: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap_or(0);
        (pages * size).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args;

    #[test]
    fn rows_by_name_typed_and_counted() {
        let db = NativeSql::memory().expect("memory db");
        db.execute_script("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, b BLOB)")
            .expect("schema");
        assert_eq!(
            db.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                &args!["a", 7i64, 1.5, vec![1u8, 2]]
            )
            .expect("insert"),
            1
        );
        assert_eq!(
            db.execute(
                "INSERT INTO t VALUES (?1, ?2, NULL, NULL) ON CONFLICT DO NOTHING",
                &args!["a", 8i64]
            )
            .expect("conflict"),
            0
        );
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct R {
            id: String,
            n: i64,
            f: Option<f64>,
            b: Option<Vec<u8>>,
        }
        let got: Vec<R> =
            super::super::query_as(&db, "SELECT b, f, n, id FROM t", &[]).expect("rows");
        assert_eq!(
            got,
            vec![R {
                id: "a".into(),
                n: 7,
                f: Some(1.5),
                b: Some(vec![1, 2])
            }]
        );
        let c = db.counters();
        assert_eq!((c.rows_read, c.rows_written), (1, 1));
    }

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let db = NativeSql::memory().expect("memory db");
        db.execute_script("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .expect("schema");
        let r: Result<(), SqlError> = db.transaction(|| {
            db.execute("INSERT INTO t VALUES ('a')", &[])?;
            db.execute("INSERT INTO t VALUES ('a')", &[])?; // a constraint error
            Ok(())
        });
        assert!(r.is_err());
        let n: Vec<serde_json::Value> = db
            .query("SELECT count(*) AS n FROM t", &[])
            .expect("count")
            .into_iter()
            .map(serde_json::Value::Object)
            .collect();
        assert_eq!(n, vec![serde_json::json!({"n": 0})]);
    }
}
