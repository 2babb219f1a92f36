//! The crate's one error type.

use std::io;

/// Everything that can go wrong in this crate, with a message a user can act on.
///
/// ```
/// use shared_runtime::{Error, RawArray};
///
/// let err = RawArray::<u64>::zeroed(usize::MAX).unwrap_err();
/// assert!(matches!(err, Error::SizeOverflow { .. }));
/// println!("{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{call} failed: {source}")]
    Os {
        /// The call that failed, e.g. `memfd_create`.
        call: &'static str,
        /// The error the OS reported.
        #[source]
        source: io::Error,
    },
    /// The byte size of a request does not fit in the address space.
    #[error("{count} elements of {elem_size} bytes overflow the address space")]
    SizeOverflow {
        /// Number of elements requested.
        count: usize,
        /// Size of one element in bytes.
        elem_size: usize,
    },
    /// The arena has no room for the request (its capacity is fixed when it is created).
    #[error(
        "shared arena is out of memory: {requested} bytes requested, {available} of {capacity} \
         bytes still unused; create a larger arena with Arena::with_capacity"
    )]
    OutOfMemory {
        /// Bytes requested (including the block header).
        requested: u64,
        /// Bytes the arena could still hand out from its never-used tail.
        available: u64,
        /// The arena's capacity.
        capacity: u64,
    },
    /// The system could not reserve pages for an allocation (a full size-limited
    /// `/dev/shm` under a named segment, or RAM and swap exhausted).
    #[error("the system could not reserve {bytes} bytes of shared memory: {source}")]
    NoSystemMemory {
        /// Bytes that were being reserved.
        bytes: u64,
        /// The error `fallocate` reported.
        #[source]
        source: io::Error,
    },
    /// An alignment this crate cannot honour.
    #[error("alignment {align} is not supported: shared objects may be aligned to at most {max}")]
    Alignment {
        /// The requested alignment.
        align: usize,
        /// The largest supported alignment.
        max: usize,
    },
    /// The arena's bookkeeping is inconsistent (corrupted by a foreign writer or a bug).
    #[error("shared arena is corrupted: {0}")]
    Corrupted(String),
    /// A capacity that cannot be used for an arena.
    #[error("invalid arena capacity {capacity}: {reason}")]
    InvalidCapacity {
        /// The requested capacity.
        capacity: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A byte string does not fit in a `CChar` array.
    #[error("{len} bytes do not fit in a character array of length {capacity}")]
    TooLong {
        /// The length of the bytes given.
        len: usize,
        /// The length of the array.
        capacity: usize,
    },
    /// A child process's closure panicked.
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let err = Process::<()>::start(|| panic!("no {}", "luck"))?.join().unwrap_err();
    /// assert!(matches!(err, Error::ChildPanicked { ref message, .. } if message == "no luck"));
    /// assert!(err.to_string().ends_with("panicked: no luck"));
    /// # Ok::<(), Error>(())
    /// ```
    #[error("child process {pid} panicked: {message}")]
    ChildPanicked {
        /// The child's process id.
        pid: i32,
        /// The panic's message (its first kilobyte or so, cut at a character boundary;
        /// `Box<dyn Any>` for a payload that is not a string).
        message: String,
    },
    /// A child process was killed by a signal.
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let p = Process::<()>::start(|| loop { std::thread::park() })?;
    /// p.kill()?;
    /// let err = p.join().unwrap_err();
    /// assert!(matches!(err, Error::ChildKilled { signal: 9, .. }));
    /// assert!(err.to_string().ends_with("was killed by signal 9 (SIGKILL)"));
    /// # Ok::<(), Error>(())
    /// ```
    #[error("child process {pid} was killed by signal {signal} ({})", crate::sys::process::signal_name(*signal))]
    ChildKilled {
        /// The child's process id.
        pid: i32,
        /// The signal's number (`libc::SIGKILL`, say).
        signal: i32,
    },
    /// A child process exited before its closure returned (with a code of its own, or
    /// with code 0 from a `std::process::exit(0)` inside the closure: no value came back).
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let err = Process::start(|| -> u32 { std::process::exit(4) })?.join().unwrap_err();
    /// assert!(matches!(err, Error::ChildExited { code: 4, .. }));
    /// let err = Process::start(|| -> u32 { std::process::exit(0) })?.join().unwrap_err();
    /// assert!(matches!(err, Error::ChildExited { code: 0, .. }));
    /// # Ok::<(), Error>(())
    /// ```
    #[error("child process {pid} exited with code {code} before its closure returned")]
    ChildExited {
        /// The child's process id.
        pid: i32,
        /// Its exit code.
        code: i32,
    },
    /// A process tried to start a child in a [`Scope`](crate::Scope) made by another
    /// process (a child handed its parent's scope): the new child would outlive the scope.
    ///
    /// ```
    /// use shared_runtime::{Error, Process};
    ///
    /// let owner = Process::scope(|s| {
    ///     s.start(|| match s.start(|| {}) {
    ///         Err(Error::ForeignScope { owner }) => owner,
    ///         _ => -1,
    ///     })?
    ///     .join()
    /// })?;
    /// assert_eq!(owner, std::process::id() as i32);
    /// # Ok::<(), Error>(())
    /// ```
    #[error(
        "this Process::scope belongs to process {owner}: start children of a child in a \
         Process::scope of the child's own"
    )]
    ForeignScope {
        /// The process id of the scope's maker.
        owner: i32,
    },
    /// A child was started in a [`Scope`](crate::Scope) that is closing: its closure has
    /// returned and the scope is joining its children (a destructor that runs then, say that
    /// of a value a child's closure owned, called [`Scope::start`](crate::Scope::start)).
    /// The new child could not be joined before the scope returns.
    ///
    /// ```
    /// use shared_runtime::{Error, Process, Scope};
    ///
    /// struct StartOnDrop<'s, 'e>(&'s Scope<'s, 'e>, &'s std::cell::Cell<bool>);
    /// impl Drop for StartOnDrop<'_, '_> {
    ///     fn drop(&mut self) {
    ///         self.1.set(matches!(self.0.start(|| {}), Err(Error::ScopeClosing)));
    ///     }
    /// }
    /// let refused = std::cell::Cell::new(false);
    /// Process::scope(|s| {
    ///     let guard = StartOnDrop(s, &refused);
    ///     // The parent's copy of the closure, and so `guard`, is dropped while the scope closes.
    ///     let _ = s.start(move || std::mem::forget(guard));
    /// });
    /// assert!(refused.get());
    /// ```
    #[error(
        "this Process::scope is closing (its closure has returned): no child can be started \
         in it any more"
    )]
    ScopeClosing,
    /// A name that cannot name a shared-memory segment or object.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A shared-memory segment that is not (or no longer) a usable arena.
    #[error("segment {name:?} is not a usable arena: {reason}")]
    InvalidSegment {
        /// The segment's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No segment or named object of that name exists.
    #[error("{what} {name:?} does not exist")]
    NotFound {
        /// "segment" or "object".
        what: &'static str,
        /// The name looked for.
        name: String,
    },
    /// A segment or named object of that name exists already.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// "segment" or "object".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A shared object was opened as a type whose layout differs from the one it was
    /// created with.
    #[error("{name} was created as {stored} but opened as {requested}")]
    LayoutMismatch {
        /// The object's name or handle.
        name: String,
        /// The layout it was created with.
        stored: String,
        /// The layout it was opened as.
        requested: String,
    },
    /// A named object or handle was opened as another kind of object than it is (a `Lock`
    /// as a `Value`, a `Value<_, Lock>` as a `Value<_, RLock>`, an array as a value).
    #[error("{name} is a {stored} but was opened as a {requested}")]
    KindMismatch {
        /// The object's name or handle.
        name: String,
        /// The kind it was created as, with its layout.
        stored: String,
        /// The kind it was opened as.
        requested: String,
    },
    /// A handle string that cannot be parsed.
    #[error("invalid handle {text:?}: {reason}")]
    InvalidHandle {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `synchronized` was given an object this process does not own.
    #[error(
        "only an object this process owns can be synchronized: a view opened by name or \
         from a borrowed handle may have twins, and a lock guard must be the only way to its \
         data (take ownership with an owned handle, or copy the data into a new object)"
    )]
    NotOwned,
    /// The calling thread's identity, which lock ownership is recorded under, could not be
    /// established: `/proc` is mounted but this thread's start time cannot be read from it
    /// (most often: the process has no free file descriptor). Nothing was locked; the same
    /// call works once a descriptor is free.
    #[error(
        "cannot establish this thread's identity for lock ownership (reading \
         /proc/thread-self/stat: {source}); nothing was locked: free a file descriptor and retry"
    )]
    ThreadIdentity {
        /// Why the start time could not be read.
        #[source]
        source: io::Error,
    },
    /// Only the process that owns an object can hand it over.
    #[error(
        "the object at offset {offset} is not owned by this process (it is a forked child's \
         copy of its parent's object, or a view opened from a borrowed handle): only its \
         owner can hand it over"
    )]
    NotOwner {
        /// The object's offset in its arena.
        offset: u64,
    },
    /// The data of a [`Value`](crate::Value) or [`Array`](crate::Array) made with its own
    /// lock shares one arena block with that lock, so it cannot be handed over on its own
    /// (`into_offset`/`into_handle` of the raw object from `into_parts`).
    #[error(
        "the object at offset {offset} shares one arena block with the lock it was made with \
         (a Value or Array made with its own lock): it cannot be handed over on its own; hand \
         over the Value's or Array's handle, or copy the data into a new RawValue/RawArray"
    )]
    SharesBlock {
        /// The object's offset in its arena.
        offset: u64,
    },
    /// An arena's allocator lock stayed held, by a holder not proven dead, for longer than
    /// this process waits (see [`Arena::set_allocator_patience`](crate::Arena::set_allocator_patience)).
    #[error(
        "the arena's allocator lock has been held for over {waited:?} by thread {} \
         (identity {holder:#x}), which is alive or not provably dead; nothing was changed \
         (if that thread hangs, or the segment was damaged, this repeats)",
        holder & 0x3fff_ffff
    )]
    AllocatorBusy {
        /// The lock word's holder identity: thread id in the low 30 bits.
        holder: u64,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// An object cannot be handed over while other clones of its handle live in this
    /// process: they would go on using memory that is no longer theirs.
    #[error(
        "the object at offset {offset} has {clones} other live clone(s) of its handle in \
         this process: drop them before handing it over"
    )]
    StillCloned {
        /// The object's offset in its arena.
        offset: u64,
        /// How many other clones are alive.
        clones: usize,
    },
    /// This process already has another handle of the block (a view opened by handle or
    /// by name, or a handle inherited from its parent process, perhaps of an object that
    /// had the block before): taking the block over, or wrapping it, would make a second
    /// handle whose lock guard the first could write behind.
    #[error(
        "this process already has a handle of the block at offset {offset}, open as \
         {open_as}: drop that handle (and its clones) first, or use it"
    )]
    AlreadyOpen {
        /// The block's offset in its arena.
        offset: u64,
        /// What the block is open as in this process.
        open_as: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A lock was poisoned: a holder panicked or died while holding it, so the data it
    /// guards may be half-updated. Made by `?` on a lock result; the conversion drops the
    /// guard, so the lock is released (keep the guard with `PoisonError::into_inner` to
    /// repair the data, then call `clear_poison()`).
    #[error(
        "lock poisoned: {}; the data it guards may be half-updated (repair it under the lock, \
         then call clear_poison())",
        crate::Poison { pid: *pid, cause: *cause }
    )]
    Poisoned {
        /// Process id of the holder that poisoned the lock, `None` if unknown.
        pid: Option<i32>,
        /// How that holder ended.
        cause: crate::PoisonCause,
    },
    /// `try_lock` found the lock held by another thread or process, or `try_lock_for` ran
    /// out of time waiting for it. Made by `?` on a `TryLockResult`.
    #[error(
        "the lock is held by another thread or process (try_lock found it taken, or \
         try_lock_for ran out of time); nothing was locked"
    )]
    WouldBlock,
    /// A [`Barrier`](crate::Barrier) is broken: it was aborted, a waiter timed out, or it
    /// was reset while this process waited (as Python's `threading.BrokenBarrierError`).
    #[error(
        "the barrier is broken (aborted, a waiter timed out, a party died or it was reset \
         while waiting); call reset() to use it again"
    )]
    BrokenBarrier,
    /// A [`Barrier`](crate::Barrier) was asked for a number of parties it cannot have:
    /// none, or more than [`Barrier::MAX_PARTIES`](crate::Barrier::MAX_PARTIES).
    #[error(
        "a barrier cannot have {parties} parties: give at least 1 and at most {max}",
        max = crate::Barrier::MAX_PARTIES
    )]
    InvalidParties {
        /// The number given.
        parties: usize,
    },
    /// [`BoundedSemaphore::release`](crate::BoundedSemaphore::release) would raise the value
    /// past its initial value (Python's `ValueError: Semaphore released too many times`), or
    /// [`Semaphore::release`](crate::Semaphore::release) past `u32::MAX` (Python's
    /// `OverflowError`). The value is unchanged.
    #[error("semaphore released too many times: its value may not exceed {bound}")]
    SemaphoreOverflow {
        /// The initial value, which the value may not exceed.
        bound: u32,
    },
    /// A push into a [`Queue`](crate::Queue) that was closed; the item was not pushed.
    #[error("the queue is closed: nothing can be pushed into it any more")]
    QueueClosed,
    /// A [`Queue`](crate::Queue) capacity that cannot be used: 0, or more slots than an
    /// arena can hold.
    #[error("invalid queue capacity {capacity}: {reason}")]
    InvalidQueueCapacity {
        /// The requested capacity.
        capacity: u64,
        /// Why it was rejected.
        reason: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
///
/// ```
/// fn make() -> shared_runtime::Result<shared_runtime::RawValue<i32>> {
///     shared_runtime::RawValue::new(5)
/// }
/// assert_eq!(make().unwrap().get(), 5);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a `nix` error.
    pub(crate) fn nix(call: &'static str, errno: nix::errno::Errno) -> Self {
        Error::Os {
            call,
            source: io::Error::from_raw_os_error(errno as i32),
        }
    }
}
