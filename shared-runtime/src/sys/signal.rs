//! Signals this process sends itself.

/// Kills the calling process with `SIGKILL`, at once: no unwinding, no `atexit`
/// handlers, exactly as if another process had killed it. Used by the fault-injection
/// hook (`arena::crash`).
pub(crate) fn kill_self() -> ! {
    // raise(3) cannot fail for a valid signal, and SIGKILL cannot be caught or ignored,
    // so the process ends here.
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // Unreachable in practice; `_exit` keeps the `!` honest if it ever returned.
    crate::sys::process::exit_now(137)
}
