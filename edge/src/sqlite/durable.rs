//! [`Sql`] over a SQLite-backed Durable Object's storage (`state.storage().sql()`), wasm32
//! only. Transactions go through `storage.transactionSync(callback)`, which workers-rs
//! 0.8.7 does not bind: it is declared here with a stack closure (valid for the call only),
//! so the callback may borrow the engine and its request.

use super::{Arg, Counters, Row, Sql, SqlError};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{SqlStorage, SqlStorageValue, Storage};

#[wasm_bindgen]
extern "C" {
    /// The Durable Object's `DurableObjectStorage`, for the one method workers-rs lacks.
    type TxStorage;

    /// `storage.transactionSync(callback)`: runs `callback` in a transaction, rolled back
    /// when it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(
        this: &TxStorage,
        callback: &mut dyn FnMut() -> Result<JsValue, JsValue>,
    ) -> Result<JsValue, JsValue>;
}

/// A Durable Object's SQL storage.
pub struct DurableSql {
    storage: Storage,
    sql: SqlStorage,
    read: Cell<u64>,
    written: Cell<u64>,
}

impl DurableSql {
    /// The SQL storage of a Durable Object (`state.storage()`).
    pub fn new(storage: Storage) -> DurableSql {
        let sql = storage.sql();
        DurableSql {
            storage,
            sql,
            read: Cell::new(0),
            written: Cell::new(0),
        }
    }

    /// The storage itself (alarms).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn run(&self, sql: &str, args: &[Arg]) -> Result<(Vec<Row>, u64), SqlError> {
        let binds: Vec<SqlStorageValue> = args
            .iter()
            .map(|a| match a {
                Arg::Null => SqlStorageValue::Null,
                Arg::Int(i) => SqlStorageValue::Integer(*i),
                Arg::Real(f) => SqlStorageValue::Float(*f),
                Arg::Text(s) => SqlStorageValue::String(s.clone()),
                Arg::Blob(b) => SqlStorageValue::Blob(b.clone()),
            })
            .collect();
        let cursor = self
            .sql
            .exec(sql, binds)
            .map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
        let names = cursor.column_names();
        let mut out = Vec::new();
        for row in cursor.raw() {
            let row = row.map_err(|e| SqlError::new(format!("{e} in: {sql}")))?;
            let mut obj = Row::new();
            for (name, v) in names.iter().zip(row) {
                obj.insert(name.clone(), json(v));
            }
            out.push(obj);
        }
        let written = cursor.rows_written() as u64;
        self.read.set(self.read.get() + cursor.rows_read() as u64);
        self.written.set(self.written.get() + written);
        Ok((out, written))
    }
}

fn json(v: SqlStorageValue) -> serde_json::Value {
    match v {
        SqlStorageValue::Null => serde_json::Value::Null,
        SqlStorageValue::Boolean(b) => b.into(),
        SqlStorageValue::Integer(i) => i.into(),
        SqlStorageValue::Float(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        SqlStorageValue::String(s) => s.into(),
        SqlStorageValue::Blob(b) => b.into_iter().map(serde_json::Value::from).collect(),
    }
}

impl Sql for DurableSql {
    fn query(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, SqlError> {
        Ok(self.run(sql, args)?.0)
    }

    fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, SqlError> {
        Ok(self.run(sql, args)?.1)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut f = Some(f);
        let mut out: Option<Result<T, E>> = None;
        let mut callback = || -> Result<JsValue, JsValue> {
            if let Some(f) = f.take() {
                let r = f();
                let failed = r.is_err();
                out = Some(r);
                if failed {
                    // throwing is what rolls the transaction back
                    return Err(JsValue::from_str("closeloop: transaction rolled back"));
                }
            }
            Ok(JsValue::UNDEFINED)
        };
        let storage: &TxStorage = self.storage.as_raw().unchecked_ref();
        let done = storage.transaction_sync(&mut callback);
        match (out, done) {
            (Some(Ok(v)), Ok(_)) => Ok(v),
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(E::from(SqlError::new(format!(
                "transactionSync failed: {}",
                e.as_string()
                    .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
                    .unwrap_or_default()
            )))),
            (None, Ok(_)) => Err(E::from(SqlError::new(
                "transactionSync did not run its callback",
            ))),
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            rows_read: self.read.get(),
            rows_written: self.written.get(),
        }
    }

    fn database_size(&self) -> u64 {
        self.sql.database_size() as u64
    }
}
