//! Threads and fork together: threads allocate and lock while the main thread forks children that do the same.
