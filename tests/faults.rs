//! Regression tests for faults: re-entry overflow, hidden /proc, exhausted descriptors, leaked arenas, damaged segments.
