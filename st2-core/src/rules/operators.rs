//! The names of StackStorm's criteria operators (`st2common/operators.py`) and their aliases.

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
    let lower = name.to_ascii_lowercase();
    OPERATORS.iter().find(|(n, _)| *n == lower).map(|(_, c)| *c)
}

/// True when StackStorm knows the operator.
pub fn is_known_operator(name: &str) -> bool {
    canonical_operator(name).is_some()
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
    }
}
