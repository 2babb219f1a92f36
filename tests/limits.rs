//! Resource limits (arena capacity, address space, descriptors) give errors and leave allocated objects intact.
