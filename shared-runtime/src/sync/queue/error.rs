//! What a push or pop that did not happen says, handing the item back.

use std::fmt;

use crate::Error;

/// Why [`try_push`](super::Queue::try_push) or [`push_timeout`](super::Queue::push_timeout)
/// did not push: the item is handed back in every case.
///
/// ```
/// use shared_runtime::{PushError, Queue};
///
/// let q = Queue::new(1)?;
/// q.try_push(1u32).unwrap();
/// let err = q.try_push(2).unwrap_err();
/// assert!(matches!(err, PushError::Full(2)));
/// assert_eq!(err.into_inner(), 2);
/// q.close();
/// assert!(matches!(q.try_push(3), Err(PushError::Closed(3))));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
pub enum PushError<T> {
    /// The queue was full, or its lock busy for 1 ms ([`try_push`](super::Queue::try_push)).
    Full(T),
    /// The queue stayed full until the timeout ([`push_timeout`](super::Queue::push_timeout)).
    Timeout(T),
    /// The queue is closed: nothing can be pushed any more.
    Closed(T),
    /// The queue cannot be used: its header or lock word was overwritten
    /// ([`Error::Corrupted`]), or this thread cannot lock (it cannot get its identity).
    Failed(T, Error),
}

impl<T> PushError<T> {
    /// The item that was not pushed.
    ///
    /// ```
    /// let q = shared_runtime::Queue::new(1)?;
    /// q.close();
    /// assert_eq!(q.try_push(7u8).unwrap_err().into_inner(), 7);
    /// # Ok::<(), shared_runtime::Error>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(t)
            | PushError::Timeout(t)
            | PushError::Closed(t)
            | PushError::Failed(t, _) => t,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            PushError::Full(_) => "Full",
            PushError::Timeout(_) => "Timeout",
            PushError::Closed(_) => "Closed",
            PushError::Failed(..) => "Failed",
        }
    }
}

// By hand, as std's `TrySendError`: the item need not be `Debug`.
impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Failed(_, e) => f.debug_tuple("Failed").field(&"..").field(e).finish(),
            other => write!(f, "{}(..)", other.what()),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("the queue is full; the item was not pushed"),
            PushError::Timeout(_) => {
                f.write_str("the queue stayed full until the timeout; the item was not pushed")
            }
            PushError::Closed(_) => f.write_str(
                "the queue is closed: nothing can be pushed into it any more; the item was \
                 not pushed",
            ),
            PushError::Failed(_, e) => write!(f, "the item was not pushed: {e}"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::Failed(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`try_pop`](super::Queue::try_pop) or [`pop_timeout`](super::Queue::pop_timeout)
/// returned no item.
///
/// ```
/// use shared_runtime::{PopError, Queue};
///
/// let q = Queue::<u32>::new(2)?;
/// assert!(matches!(q.try_pop(), Err(PopError::Empty)));
/// q.push(1)?;
/// q.close();
/// assert!(matches!(q.try_pop(), Ok(1))); // what was pushed is drained first
/// assert!(matches!(q.try_pop(), Err(PopError::Closed)));
/// # Ok::<(), shared_runtime::Error>(())
/// ```
#[derive(Debug)]
pub enum PopError {
    /// The queue was empty and open, or its lock busy for 1 ms
    /// ([`try_pop`](super::Queue::try_pop)).
    Empty,
    /// The queue stayed empty until the timeout ([`pop_timeout`](super::Queue::pop_timeout)).
    Timeout,
    /// The queue is closed and empty: no item will ever come.
    Closed,
    /// The queue cannot be used: its header or lock word was overwritten
    /// ([`Error::Corrupted`]), or this thread cannot lock (it cannot get its identity).
    Failed(Error),
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PopError::Empty => f.write_str("the queue is empty"),
            PopError::Timeout => f.write_str("the queue stayed empty until the timeout"),
            PopError::Closed => f.write_str("the queue is closed and empty: no item will come"),
            PopError::Failed(e) => write!(f, "no item was popped: {e}"),
        }
    }
}

impl std::error::Error for PopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PopError::Failed(e) => Some(e),
            _ => None,
        }
    }
}
