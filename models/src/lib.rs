//! veil-models
