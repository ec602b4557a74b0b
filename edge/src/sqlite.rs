//! The storage seam of issue 14's engines (the [`crate::shard`] and the
//! [`crate::directory`]): one tiny SQL interface, [`Sql`], that a SQLite-backed Durable
//! Object's `state.storage().sql()` implements in the worker ([`durable`], wasm32 only) and
//! `rusqlite` implements natively ([`native`], everything but wasm32), so that each engine's
//! logic is plain synchronous Rust over SQL, tested fast without workerd, and the Durable
//! Object classes only carry out what it decides.
//!
//! # The contract
//!
//! - A statement takes positional binds ([`Arg`]: `?1`, `?2`, ... or `?`) and answers its
//!   rows as JSON objects **by column name** ([`Row`]); [`rows`] turns them into typed
//!   structs with serde. Nothing reads a column by its position.
//! - Integers cross as JavaScript numbers in the worker: only values within ±2⁵³ are bound or
//!   read as integers (64-bit hashes travel as hex text, fixed-point credits as two parts).
//!   A blob reads back as a JSON array of bytes (`Vec<u8>` with serde).
//! - [`Sql::transaction`] runs a closure atomically: everything it writes is committed
//!   together, or nothing when it returns an error. In a Durable Object that is
//!   `storage.transactionSync(callback)` (the SQL API refuses `BEGIN`; a callback that
//!   throws rolls back); natively `BEGIN IMMEDIATE` / `COMMIT` / `ROLLBACK`. The engines run
//!   every request's writes inside one transaction, with no `await` in it (a Durable Object
//!   is single-threaded: no other request runs in between).
//! - [`Sql::counters`] counts rows read and written since the connection was made: the
//!   Durable Object's cursors' `rowsRead` / `rowsWritten` (what Cloudflare bills); natively,
//!   rows returned and rows changed (SQLite does not count rows scanned), so the native
//!   figures are lower bounds of the billed ones.

#[cfg(target_arch = "wasm32")]
pub mod durable;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;

use serde::de::DeserializeOwned;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// SQL NULL.
    Null,
    /// An integer (within ±2⁵³: it crosses JavaScript as a number).
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<i32> for Arg {
    fn from(v: i32) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}
impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// Binds: `args![a, b, c]` is `[Arg::from(a), Arg::from(b), Arg::from(c)]` (an array:
/// `&args![..]` is the `&[Arg]` a statement takes).
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        [$($crate::sqlite::Arg::from($v)),*]
    };
}

/// One result row: column name → value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A failed statement or transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What went wrong (never shown to a client).
    pub message: String,
}

impl SqlError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        SqlError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlError {}

/// Rows read and written so far (see the [module docs](self) for what each side counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, rhs: Counters) -> Counters {
        Counters {
            rows_read: self.rows_read.saturating_sub(rhs.rows_read),
            rows_written: self.rows_written.saturating_sub(rhs.rows_written),
        }
    }
}

/// The SQL an engine runs (see the [module docs](self)).
pub trait Sql {
    /// Runs one statement and returns its rows.
    fn query(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, SqlError>;

    /// Runs one statement and returns how many rows it wrote.
    fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, SqlError>;

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back when it
    /// returns `Err` (the error is returned). Not nested.
    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>;

    /// Rows read and written since the connection was made.
    fn counters(&self) -> Counters;

    /// The database's size in bytes.
    fn database_size(&self) -> u64;

    /// Runs a script of statements without binds or rows (the schema's migrations).
    fn execute_script(&self, script: &str) -> Result<(), SqlError> {
        for stmt in split_script(script) {
            self.execute(stmt, &[])?;
        }
        Ok(())
    }
}

/// The statements of a script: split at `;` outside quotes, `--` comments dropped, empty ones
/// skipped. (Enough for the engines' own schema files, which have no triggers.)
pub fn split_script(script: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut chars = script.char_indices().peekable();
    let mut comment = false;
    while let Some((i, c)) = chars.next() {
        if comment {
            if c == '\n' {
                comment = false;
            }
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '-') if chars.peek().is_some_and(|(_, n)| *n == '-') => comment = true,
            (None, ';') => {
                out.push(&script[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&script[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| {
            s.lines()
                .map(str::trim)
                .any(|l| !l.is_empty() && !l.starts_with("--"))
        })
        .collect()
}

/// Typed rows (by column name, with serde).
pub fn rows<T: DeserializeOwned>(rows: Vec<Row>) -> Result<Vec<T>, SqlError> {
    rows.into_iter()
        .map(|r| {
            serde_json::from_value(serde_json::Value::Object(r))
                .map_err(|e| SqlError::new(format!("reading a row: {e}")))
        })
        .collect()
}

/// Runs a query and types its rows.
pub fn query_as<T: DeserializeOwned, S: Sql>(
    sql: &S,
    q: &str,
    args: &[Arg],
) -> Result<Vec<T>, SqlError> {
    rows(sql.query(q, args)?)
}

/// Runs a query and types its first row, if any.
pub fn query_one<T: DeserializeOwned, S: Sql>(
    sql: &S,
    q: &str,
    args: &[Arg],
) -> Result<Option<T>, SqlError> {
    Ok(query_as(sql, q, args)?.into_iter().next())
}

/// A schema: its migrations in order; migration `i` brings the database to version `i + 1`.
/// [`migrate`] runs the missing ones, each in its own transaction with the version bump.
pub struct Schema {
    /// The engine's name (for errors).
    pub name: &'static str,
    /// The migration scripts, oldest first.
    pub migrations: &'static [&'static str],
}

/// The table every engine keeps its schema version in (`PRAGMA user_version` is not
/// available in a Durable Object's SQL API).
const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS _schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)";
const VERSION_READ: &str = "SELECT version FROM _schema WHERE id = 1";
const VERSION_WRITE: &str = "INSERT INTO _schema (id, version) VALUES (1, ?1) \
     ON CONFLICT (id) DO UPDATE SET version = excluded.version";

/// Brings the database to the schema's latest version; returns the version it found.
pub fn migrate<S: Sql>(sql: &S, schema: &Schema) -> Result<u64, SqlError> {
    sql.execute(VERSION_TABLE, &[])?;
    #[derive(serde::Deserialize)]
    struct V {
        version: u64,
    }
    let found = query_one::<V, S>(sql, VERSION_READ, &[])?.map_or(0, |v| v.version);
    let latest = schema.migrations.len() as u64;
    if found > latest {
        return Err(SqlError::new(format!(
            "the {} database is at schema version {found}, newer than this code's {latest}",
            schema.name
        )));
    }
    for (i, script) in schema.migrations.iter().enumerate().skip(found as usize) {
        sql.transaction(|| -> Result<(), SqlError> {
            sql.execute_script(script)?;
            sql.execute(VERSION_WRITE, &[Arg::Int(i as i64 + 1)])?;
            Ok(())
        })?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_at_semicolons_outside_quotes_and_comments() {
        let s = "-- a comment; not a statement\nCREATE TABLE a (x TEXT DEFAULT ';');\n\n  INSERT INTO a VALUES ('x;y') ;\n-- trailing";
        let got: Vec<String> = split_script(s)
            .into_iter()
            .map(|st| {
                st.lines()
                    .filter(|l| !l.trim().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "CREATE TABLE a (x TEXT DEFAULT ';')",
                "INSERT INTO a VALUES ('x;y')"
            ]
        );
    }
}
