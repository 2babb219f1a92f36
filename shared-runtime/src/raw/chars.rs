//! ctypes' `c_char` array accessors: `value`/`set_value` and `raw`/`set_raw`.

use crate::raw::RawArray;
use crate::{CChar, Error, Result};

impl RawArray<CChar> {
    /// The bytes up to (not including) the first NUL, or all of them if there is none
    /// (ctypes' `.value`).
    ///
    /// ```
    /// let s = shared_runtime::raw_array!('c', 8)?;
    /// s.set_value(b"hi")?;
    /// assert_eq!(s.value(), b"hi");
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn value(&self) -> Vec<u8> {
        self.allocation().assert_not_borrowed_here();
        self.value_unchecked()
    }

    /// [`value`](Self::value) without the borrow check, for `Synchronized` (see
    /// [`RawArray::load_at`]).
    pub(crate) fn value_unchecked(&self) -> Vec<u8> {
        let mut raw = self.raw_unchecked();
        if let Some(nul) = raw.iter().position(|&b| b == 0) {
            raw.truncate(nul);
        }
        raw
    }

    /// Stores `bytes` followed by a NUL if there is room for it (ctypes' `.value = ...`).
    ///
    /// # Errors
    /// [`Error::TooLong`] if `bytes` is longer than the array; nothing is written then.
    ///
    /// ```
    /// let s = shared_runtime::raw_array!('c', 3)?;
    /// s.set_value(b"abc")?; // fits exactly: no terminator
    /// assert_eq!(s.value(), b"abc");
    /// assert!(s.set_value(b"abcd").is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        self.allocation().assert_not_borrowed_here();
        self.set_value_unchecked(bytes)
    }

    /// [`set_value`](Self::set_value) without the borrow check.
    pub(crate) fn set_value_unchecked(&self, bytes: &[u8]) -> Result<()> {
        check_fits(bytes, self.len())?;
        self.write_unchecked(0, CChar::from_bytes(bytes));
        if bytes.len() < self.len() {
            self.store_at(bytes.len(), CChar(0));
        }
        Ok(())
    }

    /// Every byte of the array, NULs included (ctypes' `.raw`).
    ///
    /// ```
    /// let s = shared_runtime::raw_array!('c', 3)?;
    /// assert_eq!(s.raw(), [0, 0, 0]);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn raw(&self) -> Vec<u8> {
        self.allocation().assert_not_borrowed_here();
        self.raw_unchecked()
    }

    /// [`raw`](Self::raw) without the borrow check.
    pub(crate) fn raw_unchecked(&self) -> Vec<u8> {
        self.read_unchecked(..).into_iter().map(|c| c.0).collect()
    }

    /// Overwrites the first `bytes.len()` bytes; the rest are left as they were (ctypes'
    /// `.raw = ...`).
    ///
    /// # Errors
    /// [`Error::TooLong`] if `bytes` is longer than the array; nothing is written then.
    ///
    /// ```
    /// let s = shared_runtime::raw_array!('c', 4)?;
    /// s.set_raw(b"ab\0d")?;
    /// assert_eq!((s.value(), s.raw()), (b"ab".to_vec(), b"ab\0d".to_vec()));
    /// assert!(s.set_raw(b"12345").is_err());
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    #[track_caller]
    pub fn set_raw(&self, bytes: &[u8]) -> Result<()> {
        self.allocation().assert_not_borrowed_here();
        self.set_raw_unchecked(bytes)
    }

    /// [`set_raw`](Self::set_raw) without the borrow check.
    pub(crate) fn set_raw_unchecked(&self, bytes: &[u8]) -> Result<()> {
        check_fits(bytes, self.len())?;
        self.write_unchecked(0, CChar::from_bytes(bytes));
        Ok(())
    }
}

pub(crate) fn check_fits(bytes: &[u8], capacity: usize) -> Result<()> {
    if bytes.len() > capacity {
        return Err(Error::TooLong {
            len: bytes.len(),
            capacity,
        });
    }
    Ok(())
}
