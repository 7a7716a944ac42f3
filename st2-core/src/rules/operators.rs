//! StackStorm's criteria operators (`st2common/operators.py`): their names and aliases, and
//! what each one does with a payload value and a (rendered) pattern, with Python's semantics on
//! JSON-decoded values.
//!
//! Semantics, `v` the payload value (`null` when the key is missing: Python `None` either way),
//! `p` the pattern:
//!
//! | operator | result | `p` is null |
//! |---|---|---|
//! | `equals` / `nequals` | `v == p` / `v != p` (Python `==`: `1 == 1.0` and `true == 1` hold, `"1" != 1`) | false / compared |
//! | `iequals` | `v.lower() == p.lower()` (both must be strings: `AttributeError`) | false |
//! | `contains` / `ncontains` | `p in v` / `p not in v` (substring, list item, dict key) | false |
//! | `icontains` / `incontains` | `p.lower() in v.lower()` / `not in` | false |
//! | `startswith`, `endswith` (+ `i…`) | `v.startswith(p)` (`i…`: both lowercased) | false |
//! | `lessthan` / `greaterthan` | `v < p` / `v > p` (numbers, strings, lists; else `TypeError`) | false |
//! | `matchwildcard` | `fnmatch.fnmatch(v, p)` (case-sensitive, whole string) | false |
//! | `matchregex` | `re.compile(p, re.DOTALL).match(v)` (anchored at the start) | false |
//! | `regex` / `iregex` | `re.search(p, v)` / with `re.IGNORECASE` | false |
//! | `timediff_lt` / `timediff_gt` | `(now − parse(str(v))).seconds < / > float(p)`, `v` UTC unless it says | false |
//! | `exists` / `nexists` | `v is not None` / `v is None` | ignored |
//! | `inside` / `ninside` | `v in p` / `v not in p` | false |
//! | `search` | evaluated by the filter (child criteria per list item) | — |
//!
//! Why `true == 1`: StackStorm compares the Python objects `json.loads` (and MongoDB) give
//! back, where `bool` is a subclass of `int`; there is no coercion beyond that (`ensure_
//! operators_are_strings` only decodes `bytes`). Errors are values: an operator that would raise
//! in Python returns an [`OperatorError`] carrying the exception's text.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::dates::parse_datetime;
use super::pyregex::{self, Flavor, PyRegex};
use super::python::{py_compare, py_eq, py_float, py_in, py_lower, str_method, CmpOp};
use crate::pyfmt::{self, type_name, ControlEscapes};

/// Every operator name StackStorm accepts, long names first, then short aliases.
pub const OPERATORS: &[(&str, &str)] = &[
    ("equals", "equals"),
    ("eq", "equals"),
    ("nequals", "nequals"),
    ("neq", "nequals"),
    ("iequals", "iequals"),
    ("ieq", "iequals"),
    ("contains", "contains"),
    ("ncontains", "ncontains"),
    ("icontains", "icontains"),
    ("incontains", "incontains"),
    ("startswith", "startswith"),
    ("istartswith", "istartswith"),
    ("endswith", "endswith"),
    ("iendswith", "iendswith"),
    ("lessthan", "lessthan"),
    ("lt", "lessthan"),
    ("greaterthan", "greaterthan"),
    ("gt", "greaterthan"),
    ("matchwildcard", "matchwildcard"),
    ("matchregex", "matchregex"),
    ("regex", "regex"),
    ("iregex", "iregex"),
    ("timediff_lt", "timediff_lt"),
    ("td_lt", "timediff_lt"),
    ("timediff_gt", "timediff_gt"),
    ("td_gt", "timediff_gt"),
    ("exists", "exists"),
    ("nexists", "nexists"),
    ("inside", "inside"),
    ("in", "inside"),
    ("ninside", "ninside"),
    ("nin", "ninside"),
    ("search", "search"),
];

/// The long name of an operator (names are case-insensitive), if it is known.
pub fn canonical_operator(name: &str) -> Option<&'static str> {
    OPERATORS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

/// True when StackStorm knows the operator.
pub fn is_known_operator(name: &str) -> bool {
    canonical_operator(name).is_some()
}

/// A criteria operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `equals`, `eq`.
    Equals,
    /// `nequals`, `neq`.
    NEquals,
    /// `iequals`, `ieq`.
    IEquals,
    /// `contains`.
    Contains,
    /// `ncontains`.
    NContains,
    /// `icontains`.
    IContains,
    /// `incontains`.
    INContains,
    /// `startswith`.
    StartsWith,
    /// `istartswith`.
    IStartsWith,
    /// `endswith`.
    EndsWith,
    /// `iendswith`.
    IEndsWith,
    /// `lessthan`, `lt`.
    LessThan,
    /// `greaterthan`, `gt`.
    GreaterThan,
    /// `matchwildcard`.
    MatchWildcard,
    /// `matchregex` (deprecated in StackStorm).
    MatchRegex,
    /// `regex`.
    Regex,
    /// `iregex`.
    IRegex,
    /// `timediff_lt`, `td_lt`.
    TimeDiffLt,
    /// `timediff_gt`, `td_gt`.
    TimeDiffGt,
    /// `exists`.
    Exists,
    /// `nexists`.
    NExists,
    /// `inside`, `in`.
    Inside,
    /// `ninside`, `nin`.
    NInside,
    /// `search`.
    Search,
}

impl Operator {
    /// The operator a criterion `type` names (case-insensitive, aliases allowed).
    pub fn from_name(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match canonical_operator(name)? {
            "equals" => Equals,
            "nequals" => NEquals,
            "iequals" => IEquals,
            "contains" => Contains,
            "ncontains" => NContains,
            "icontains" => IContains,
            "incontains" => INContains,
            "startswith" => StartsWith,
            "istartswith" => IStartsWith,
            "endswith" => EndsWith,
            "iendswith" => IEndsWith,
            "lessthan" => LessThan,
            "greaterthan" => GreaterThan,
            "matchwildcard" => MatchWildcard,
            "matchregex" => MatchRegex,
            "regex" => Regex,
            "iregex" => IRegex,
            "timediff_lt" => TimeDiffLt,
            "timediff_gt" => TimeDiffGt,
            "exists" => Exists,
            "nexists" => NExists,
            "inside" => Inside,
            "ninside" => NInside,
            _ => Search,
        })
    }

    /// The long name.
    pub fn name(self) -> &'static str {
        use Operator::*;
        match self {
            Equals => "equals",
            NEquals => "nequals",
            IEquals => "iequals",
            Contains => "contains",
            NContains => "ncontains",
            IContains => "icontains",
            INContains => "incontains",
            StartsWith => "startswith",
            IStartsWith => "istartswith",
            EndsWith => "endswith",
            IEndsWith => "iendswith",
            LessThan => "lessthan",
            GreaterThan => "greaterthan",
            MatchWildcard => "matchwildcard",
            MatchRegex => "matchregex",
            Regex => "regex",
            IRegex => "iregex",
            TimeDiffLt => "timediff_lt",
            TimeDiffGt => "timediff_gt",
            Exists => "exists",
            NExists => "nexists",
            Inside => "inside",
            NInside => "ninside",
            Search => "search",
        }
    }

    /// How the pattern is compiled, for the pattern-matching operators.
    pub(crate) fn flavor(self) -> Option<Flavor> {
        match self {
            Operator::MatchWildcard => Some(Flavor::Wildcard),
            Operator::MatchRegex => Some(Flavor::MatchDotall),
            Operator::Regex => Some(Flavor::Search),
            Operator::IRegex => Some(Flavor::SearchIgnoreCase),
            _ => None,
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a StackStorm operator would have raised; the text is Python's `str(exception)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// `TypeError` (`'<' not supported between instances of 'str' and 'int'`).
    #[error("{0}")]
    Type(String),
    /// `AttributeError` (`'NoneType' object has no attribute 'lower'`).
    #[error("{0}")]
    Attribute(String),
    /// `ValueError` (`could not convert string to float: 'x'`).
    #[error("{0}")]
    Value(String),
    /// `re.error`: the pattern is not a valid regular expression.
    #[error("{0}")]
    Regex(String),
    /// `dateutil.parser.ParserError`: the value is not a date.
    #[error("{0}")]
    DateParse(String),
    /// `UnrecognizedConditionError`: a `search` condition other than any/all/any2any/all2any.
    #[error(
        "The '{0}' condition is not recognized for type search, 'any', 'all', 'any2any' and \
         'all2any' are allowed"
    )]
    UnrecognizedCondition(String),
}

impl OperatorError {
    /// The Python exception class.
    pub fn python_exception(&self) -> &'static str {
        match self {
            OperatorError::Type(_) => "TypeError",
            OperatorError::Attribute(_) => "AttributeError",
            OperatorError::Value(_) => "ValueError",
            OperatorError::Regex(_) => "re.error",
            OperatorError::DateParse(_) => "ParserError",
            OperatorError::UnrecognizedCondition(_) => "UnrecognizedConditionError",
        }
    }
}

/// How a `search` criterion combines items and child criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchCondition {
    /// Some item matches every child criterion.
    Any,
    /// Every item matches every child criterion (true for an empty list).
    All,
    /// Every item matches at least one child criterion.
    All2Any,
    /// Some item matches at least one child criterion.
    Any2Any,
}

impl SearchCondition {
    /// The condition a criterion's `condition` names (exact, case-sensitive; a missing
    /// condition is `None`, which is not recognized).
    pub fn parse(condition: &Json) -> Result<SearchCondition, OperatorError> {
        match condition.as_str() {
            Some("any") => Ok(SearchCondition::Any),
            Some("all") => Ok(SearchCondition::All),
            Some("all2any") => Ok(SearchCondition::All2Any),
            Some("any2any") => Ok(SearchCondition::Any2Any),
            _ => Err(OperatorError::UnrecognizedCondition(pyfmt::str(
                condition,
                ControlEscapes::C0AndDel,
            ))),
        }
    }

    /// Whether every item must match (else some item).
    pub fn every_item(self) -> bool {
        matches!(self, SearchCondition::All | SearchCondition::All2Any)
    }

    /// Whether an item must match every child criterion (else one).
    pub fn every_child(self) -> bool {
        matches!(self, SearchCondition::All | SearchCondition::Any)
    }
}

/// The error Python raises when `search` is called like the other operators (StackStorm does
/// that when the criterion's `type` is not spelled exactly `search`).
pub(crate) fn search_misuse() -> OperatorError {
    OperatorError::Type(
        "search() missing 2 required positional arguments: 'criteria_condition' and \
         'check_function'"
            .into(),
    )
}

/// A pattern compiled ahead of time for a pattern-matching operator.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRegex {
    /// The pattern text it was compiled from.
    pub(crate) source: String,
    /// The compiled pattern, or why it does not compile.
    pub(crate) compiled: Arc<Result<PyRegex, OperatorError>>,
}

impl PreparedRegex {
    pub(crate) fn new(source: &str, flavor: Flavor) -> PreparedRegex {
        PreparedRegex {
            source: source.to_string(),
            compiled: Arc::new(PyRegex::compile(source, flavor)),
        }
    }
}

/// Applies `op` to a payload value and a pattern, with the current time for `timediff_*`.
/// `search` needs child criteria and is evaluated by [`filter`](mod@super::filter); here it fails as it
/// does in Python when called without them.
pub fn apply(op: Operator, value: &Json, pattern: &Json) -> Result<bool, OperatorError> {
    apply_at(op, value, pattern, Utc::now())
}

/// [`apply`] with `now` as the current time.
pub fn apply_at(
    op: Operator,
    value: &Json,
    pattern: &Json,
    now: DateTime<Utc>,
) -> Result<bool, OperatorError> {
    apply_prepared(op, value, pattern, now, None)
}

/// [`apply_at`] using `prepared` when it was compiled from this very pattern.
pub(crate) fn apply_prepared(
    op: Operator,
    value: &Json,
    pattern: &Json,
    now: DateTime<Utc>,
    prepared: Option<&PreparedRegex>,
) -> Result<bool, OperatorError> {
    use Operator::*;
    // Every operator but nequals, exists, nexists and search is false for a None pattern.
    if pattern.is_null() && !matches!(op, NEquals | Exists | NExists | Search) {
        return Ok(false);
    }
    match op {
        Equals => Ok(py_eq(value, pattern)),
        NEquals => Ok(!py_eq(value, pattern)),
        IEquals => Ok(py_lower(value)? == py_lower(pattern)?),
        Contains => py_in(pattern, value),
        NContains => py_in(pattern, value).map(|b| !b),
        IContains => {
            let p = py_lower(pattern)?;
            let v = py_lower(value)?;
            Ok(v.contains(&p))
        }
        INContains => {
            let p = py_lower(pattern)?;
            let v = py_lower(value)?;
            Ok(!v.contains(&p))
        }
        StartsWith => affix(value, pattern, "startswith", false, |v, p| v.starts_with(p)),
        IStartsWith => affix(value, pattern, "startswith", true, |v, p| v.starts_with(p)),
        EndsWith => affix(value, pattern, "endswith", false, |v, p| v.ends_with(p)),
        IEndsWith => affix(value, pattern, "endswith", true, |v, p| v.ends_with(p)),
        LessThan => py_compare(value, pattern, CmpOp::Lt),
        GreaterThan => py_compare(value, pattern, CmpOp::Gt),
        MatchWildcard => {
            let path_arg = |v: &Json| -> Result<(), OperatorError> {
                if v.is_string() {
                    Ok(())
                } else {
                    Err(OperatorError::Type(format!(
                        "expected str, bytes or os.PathLike object, not {}",
                        type_name(v)
                    )))
                }
            };
            path_arg(value)?;
            path_arg(pattern)?;
            pattern_match(value, pattern, Flavor::Wildcard, prepared)
        }
        MatchRegex | Regex | IRegex => {
            let Some(p) = pattern.as_str() else {
                return Err(OperatorError::Type(
                    "first argument must be string or compiled pattern".into(),
                ));
            };
            let flavor = op.flavor().unwrap_or(Flavor::Search);
            let compiled = compiled(p, flavor, prepared);
            let regex = compiled.as_ref().as_ref().map_err(Clone::clone)?;
            let Some(v) = value.as_str() else {
                return Err(OperatorError::Type(format!(
                    "expected string or bytes-like object, got '{}'",
                    type_name(value)
                )));
            };
            regex.is_match(v)
        }
        TimeDiffLt | TimeDiffGt => {
            let target = parse_datetime(&pyfmt::str(value, ControlEscapes::C0AndDel), now)
                .map_err(OperatorError::DateParse)?;
            let period = py_float(pattern)?;
            let elapsed = (now - target)
                .num_microseconds()
                .map_or(f64::INFINITY, |us| us as f64 / 1e6);
            Ok(if op == TimeDiffLt {
                elapsed < period
            } else {
                elapsed > period
            })
        }
        Exists => Ok(!value.is_null()),
        NExists => Ok(value.is_null()),
        Inside => py_in(value, pattern),
        NInside => py_in(value, pattern).map(|b| !b),
        Search => Err(search_misuse()),
    }
}

/// `value.startswith(pattern)` and friends: the method must exist on the value (a string), the
/// argument must be a string; with `lower`, both are lowercased first (value first).
fn affix(
    value: &Json,
    pattern: &Json,
    method: &str,
    lower: bool,
    test: impl Fn(&str, &str) -> bool,
) -> Result<bool, OperatorError> {
    if lower {
        let v = py_lower(value)?;
        let p = py_lower(pattern)?;
        return Ok(test(&v, &p));
    }
    let v = str_method(value, method)?;
    match pattern {
        Json::String(p) => Ok(test(v, p)),
        other => Err(OperatorError::Type(format!(
            "{method} first arg must be str or a tuple of str, not {}",
            type_name(other)
        ))),
    }
}

fn compiled(
    pattern: &str,
    flavor: Flavor,
    prepared: Option<&PreparedRegex>,
) -> Arc<Result<PyRegex, OperatorError>> {
    match prepared {
        Some(p) if p.source == pattern => Arc::clone(&p.compiled),
        _ => pyregex::cached(pattern, flavor),
    }
}

fn pattern_match(
    value: &Json,
    pattern: &Json,
    flavor: Flavor,
    prepared: Option<&PreparedRegex>,
) -> Result<bool, OperatorError> {
    let (Some(v), Some(p)) = (value.as_str(), pattern.as_str()) else {
        return Ok(false);
    };
    let compiled = compiled(p, flavor, prepared);
    let regex = compiled.as_ref().as_ref().map_err(Clone::clone)?;
    regex.is_match(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_case() {
        assert_eq!(canonical_operator("EQ"), Some("equals"));
        assert_eq!(canonical_operator("td_gt"), Some("timediff_gt"));
        assert_eq!(canonical_operator("nin"), Some("ninside"));
        assert_eq!(canonical_operator("MatchRegex"), Some("matchregex"));
        assert!(!is_known_operator("like"));
        for (name, long) in OPERATORS {
            let op = Operator::from_name(name).expect("known");
            assert_eq!(op.name(), *long);
            assert_eq!(Operator::from_name(&name.to_uppercase()), Some(op));
        }
    }

    #[test]
    fn search_conditions() {
        use serde_json::json;
        assert_eq!(
            SearchCondition::parse(&json!("any2any")).ok(),
            Some(SearchCondition::Any2Any)
        );
        assert_eq!(
            SearchCondition::parse(&json!(null))
                .expect_err("an error")
                .to_string(),
            "The 'None' condition is not recognized for type search, 'any', 'all', 'any2any' \
             and 'all2any' are allowed"
        );
        assert!(SearchCondition::parse(&json!("ANY")).is_err());
    }
}
