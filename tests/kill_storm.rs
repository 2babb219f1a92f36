//! A kill storm over locked updates and allocations in the global and a named arena.
