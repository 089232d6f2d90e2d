//! veil
