//! One way to read a result row's cells, whichever driver produced it (sqlx's `AnyRow`, or
//! rusqlite's `Row` for the inline reads), so each row is decoded by one function.

use handoff_core::error::Result;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::db::storage_error;
use crate::inline::inline_error;

/// Typed access to the cells of one row.
pub(crate) trait Cells {
    /// A text cell.
    fn text(&self, i: usize) -> Result<String>;
    /// A text cell that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// An integer cell.
    fn int(&self, i: usize) -> Result<i64>;
    /// An integer cell that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
}

impl Cells for AnyRow {
    fn text(&self, i: usize) -> Result<String> {
        self.try_get(i).map_err(storage_error)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(storage_error)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.try_get(i).map_err(storage_error)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(storage_error)
    }
}

impl Cells for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        self.get(i).map_err(inline_error)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(inline_error)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.get(i).map_err(inline_error)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(inline_error)
    }
}
