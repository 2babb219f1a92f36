//! A model-based test of the allocator: random operation sequences against a simple model.
