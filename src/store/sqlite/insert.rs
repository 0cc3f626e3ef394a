//! The capture INSERT, bound without copies, and the writer connection that
//! owns its statements.
//!
//! rusqlite binds every text as `SQLITE_TRANSIENT`: SQLite copies it into an
//! allocation of its own, freed at the next bind, and the insert then copies
//! it once more into the record. A captured row binds a dozen texts, its two
//! bodies among them, and those copies were a third of the insert's cost
//! (`bench/instructions.sh`). [`Insert`] binds texts as `SQLITE_STATIC`, so
//! SQLite reads them in place during the step.
//!
//! This is the store's only `unsafe` code. What keeps it sound:
//! - a statement is only prepared by [`WriterConn::inserts`], on the
//!   connection the `WriterConn` owns, and lives beside it; `WriterConn`'s
//!   `Drop` finalizes the statements before the connection closes (see there
//!   why, and why it does not leave that to the order of the fields);
//! - [`Insert::run`] binds, steps, resets and clears the bindings in one call,
//!   whatever fails on the way, so SQLite never holds a pointer into a row
//!   after `run` returns;
//! - both are only used under the writer's mutex, one thread at a time, which
//!   is all a connection opened without SQLite's own mutex asks for.
//!
//! Code elsewhere in `sqlite/` reaches the writer connection through
//! `Deref`/`DerefMut` to run its own statements; it never moves the
//! connection out of its `WriterConn` or replaces it.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

/// The writer connection and the capture statements prepared on it.
pub(super) struct WriterConn {
    conn: Connection,
    /// Prepared on first use by [`WriterConn::inserts`].
    inserts: Option<Inserts>,
}

/// The capture statements: one of many rows and one of a single row.
pub(super) struct Inserts {
    pub(super) many: Insert,
    pub(super) one: Insert,
}

impl WriterConn {
    pub(super) fn new(conn: Connection) -> WriterConn {
        WriterConn {
            conn,
            inserts: None,
        }
    }

    /// The capture statements for `many` rows and for one, prepared from
    /// `sql(rows)` on first use, with the connection to run them on (to open
    /// the transaction they run in).
    pub(super) fn inserts(
        &mut self,
        many: usize,
        sql: impl Fn(usize) -> String,
    ) -> rusqlite::Result<(&mut Inserts, &mut Connection)> {
        if self.inserts.is_none() {
            self.inserts = Some(Inserts {
                many: Insert::prepare(&self.conn, &sql(many))?,
                one: Insert::prepare(&self.conn, &sql(1))?,
            });
        }
        let inserts = self.inserts.as_mut().expect("prepared above");
        Ok((inserts, &mut self.conn))
    }
}

impl Drop for WriterConn {
    /// Finalizes the statements, then lets the connection close. The order
    /// matters: SQLite refuses to close a connection that still has a
    /// statement prepared on it (`sqlite3_close` answers `SQLITE_BUSY`), and
    /// rusqlite's drop ignores the refusal, so the connection would stay open
    /// for good, holding the file, its WAL neither checkpointed nor removed,
    /// with the statements pointing into a connection nobody owns. Fields
    /// drop in declaration order, and listing `inserts` first would do the
    /// same; dropping them here by name keeps it true whatever order the
    /// fields are declared in. `closing_the_store_closes_its_file` checks it.
    fn drop(&mut self) {
        self.inserts = None;
    }
}

impl std::ops::Deref for WriterConn {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// One value to bind; texts are borrowed, not copied.
pub(super) enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a, S: AsRef<str> + ?Sized> From<&'a S> for Value<'a> {
    fn from(s: &'a S) -> Self {
        Value::Text(s.as_ref())
    }
}

/// `None` is NULL.
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Integer(n)
    }
}

impl From<f64> for Value<'_> {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Integer(b.into())
    }
}

/// A prepared statement of the writer connection; see [`WriterConn`].
pub(super) struct Insert {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: NonNull<ffi::sqlite3>,
}

// The statement is used with its connection, under the writer's mutex (see
// the module comment); SQLite allows a connection and its statements to move
// between threads when they are not used at the same time.
unsafe impl Send for Insert {}

impl Insert {
    /// Prepares `sql` on `conn`. Only [`WriterConn`] calls this, and keeps the
    /// statement beside `conn` and drops it first.
    fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<Insert> {
        // SAFETY: the handle is `conn`'s open database; the statement made
        // from it is finalized before `conn` closes (`WriterConn`'s `Drop`).
        unsafe {
            let db = NonNull::new(conn.handle()).ok_or(rusqlite::Error::InvalidQuery)?;
            let mut stmt = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                return Err(error(db, rc));
            }
            let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
            Ok(Insert { stmt, db })
        }
    }

    /// Binds `values` to parameters 1.. and runs the statement once.
    pub(super) fn run<'a>(
        &mut self,
        values: impl IntoIterator<Item = Value<'a>>,
    ) -> rusqlite::Result<()> {
        let stmt = self.stmt.as_ptr();
        let mut result = Ok(());
        for (i, value) in values.into_iter().enumerate() {
            let Ok(index) = c_int::try_from(i + 1) else {
                result = Err(rusqlite::Error::InvalidParameterCount(i + 1, i));
                break;
            };
            // SAFETY: `stmt` is a live statement; a text or blob is read in place
            // until the reset below, and `values` outlives this call.
            let rc = unsafe {
                match value {
                    Value::Null => ffi::sqlite3_bind_null(stmt, index),
                    Value::Integer(n) => ffi::sqlite3_bind_int64(stmt, index, n),
                    Value::Real(x) => ffi::sqlite3_bind_double(stmt, index, x),
                    Value::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        index,
                        s.as_ptr().cast::<c_char>(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Value::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        index,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                result = Err(self.error(rc));
                break;
            }
        }
        if result.is_ok() {
            // SAFETY: as above; every parameter is bound.
            let rc = unsafe { ffi::sqlite3_step(stmt) };
            if rc != ffi::SQLITE_DONE {
                result = Err(self.error(rc));
            }
        }
        // SAFETY: as above. After these two calls the statement holds no
        // pointer into `values`, whatever happened before.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }

    fn error(&self, rc: c_int) -> rusqlite::Error {
        error(self.db, rc)
    }
}

impl Drop for Insert {
    fn drop(&mut self) {
        // SAFETY: the statement is live and its connection still open:
        // `WriterConn`'s `Drop` drops its statements before its connection.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's error for a failed call, as rusqlite reports it.
fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is open; SQLite owns the message until the next call on it,
    // and it is copied before that.
    let message = unsafe {
        let p = ffi::sqlite3_errmsg(db.as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
}
