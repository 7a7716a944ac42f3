//! Rules: criteria operators, the evaluation of a rule's criteria against a trigger instance,
//! and the compiled, trigger-indexed rule set the rules engine matches events with, all with
//! StackStorm's semantics (`st2common/operators.py`, `st2reactor/rules/filter.py`,
//! `matcher.py`).
//!
//! # Layout
//! - [`operators`]: operator names and aliases ([`canonical_operator`], [`is_known_operator`],
//!   used by the registrar), [`Operator`] and [`apply`]: what each operator does with a value
//!   and a pattern.
//! - [`filter`](mod@filter): one rule's criteria, compiled ([`CompiledCriteria`]) and evaluated
//!   ([`FilterOutcome`], [`CriteriaError`]); [`filter()`](filter::filter) for one-off use.
//! - [`matcher`]: [`RuleSet`], the enabled rules indexed by trigger, with backstop semantics
//!   and add/replace/remove at run time.
//! - [`jsonpath`]: criteria keys as `jsonpath_rw` paths.
//! - `python` (private): Python value semantics (`==`, `<`, `in`, `lower()`, `float()`).
//! - `pyregex` (private): Python `re` and `fnmatch` patterns on Rust engines, cached.
//! - `dates` (private): `dateutil`-style date parsing for `timediff_*`.
//!
//! Pure: no store, no bus, no async. Errors are values: a criterion that cannot be evaluated
//! is false and reported; nothing panics on input.

pub mod filter;
pub mod jsonpath;
pub mod matcher;
pub mod operators;

mod dates;
mod pyregex;
mod python;

pub use filter::{filter, CompiledCriteria, CriteriaError, FilterOutcome, MatchContext};
pub use jsonpath::{JsonPath, JsonPathError};
pub use matcher::{trigger_key, MatchResult, RuleSet, RULE_TYPE_BACKSTOP};
pub use operators::{
    apply, apply_at, canonical_operator, is_known_operator, Operator, OperatorError,
    SearchCondition, OPERATORS,
};
