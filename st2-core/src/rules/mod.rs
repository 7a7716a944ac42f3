//! Rules: criteria operators and their evaluation.
//!
//! This module is pure: no store, no bus.

pub mod operators;

pub use operators::{canonical_operator, is_known_operator, OPERATORS};
