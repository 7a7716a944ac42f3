//! AMQP topic-exchange pattern matching, pure.
//!
//! Owns the one rule every bus backend routes by, so that the in-process bus routes exactly as
//! RabbitMQ does: a routing key and a binding pattern are split into words on `.`; in a pattern
//! the word `*` matches exactly one word and the word `#` matches zero or more words; any other
//! word (including `a*b` or the empty word) matches only itself. As in RabbitMQ, the empty
//! string is zero words (so `#` matches it and `*` does not), while `a..b` has an empty middle
//! word (so `a.*.b` matches it). This module does no I/O and knows nothing of queues.

/// The words of a routing key or pattern: the empty string has none.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// True if `routing_key` matches the topic `pattern` (see the module docs for the rules).
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    // The common bindings, decided without splitting: `#` and patterns without wildcards.
    if pattern == "#" {
        return true;
    }
    if !is_wildcard(pattern) {
        return pattern == routing_key;
    }
    let pattern = words(pattern);
    let key = words(routing_key);
    // `reach[j]`: the first `i` pattern words can match the first `j` key words.
    let mut reach = vec![false; key.len() + 1];
    reach[0] = true;
    for word in &pattern {
        let mut next = vec![false; key.len() + 1];
        match *word {
            "#" => {
                // Zero words, or any number more after a reachable position.
                let mut any = false;
                for j in 0..=key.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            "*" => next[1..].copy_from_slice(&reach[..key.len()]),
            literal => {
                for j in 1..=key.len() {
                    next[j] = reach[j - 1] && key[j - 1] == literal;
                }
            }
        }
        reach = next;
    }
    reach[key.len()]
}

/// True if `pattern` uses a wildcard word (`*` or `#`), i.e. it may match more than one key.
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|w| w == "*" || w == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (pattern, key, expected)
        let cases: &[(&str, &str, bool)] = &[
            // exact
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("a.b.c", "a.x.c", false),
            ("scheduled", "scheduled", true),
            ("scheduled", "requested", false),
            // `*` is exactly one word
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.*.c", "a.b.b.c", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*", "", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("*/update", "x/update", false),
            // `#` is zero or more words
            ("#", "", true),
            ("#", "a", true),
            ("#", "a.b.c", true),
            ("a.#", "a", true),
            ("a.#", "a.b", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b.a", false),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("#.c", "a.b.c.d", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.b.c", true),
            ("a.#.c", "a.b.x.c", true),
            ("a.#.c", "a.b.x", false),
            ("#.#", "", true),
            ("#.#", "a.b", true),
            ("#.*", "", false),
            ("#.*", "a", true),
            ("*.#", "a.b.c", true),
            ("a.#.#.c", "a.c", true),
            ("#.b.#", "a.b.c", true),
            ("#.b.#", "b", true),
            ("#.b.#", "a.c", false),
            // empty words
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("a.*.c", "a..c", true),
            ("a..c", "a..c", true),
            ("a..c", "a.b.c", false),
            ("*", ".", false),
            ("*.*", ".", true),
            ("a.*", "a.", true),
            ("#", ".", true),
            // wildcard characters only count as whole words
            ("a*", "ab", false),
            ("a*", "a*", true),
            ("a#", "a.b", false),
            ("a.b#", "a.b#", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(
                matches(pattern, key),
                *expected,
                "matches({pattern:?}, {key:?}) should be {expected}"
            );
        }
    }

    #[test]
    fn wildcard_detection() {
        let cases: &[(&str, bool)] = &[
            ("a.b", false),
            ("a.*", true),
            ("#", true),
            ("a*", false),
            ("", false),
        ];
        for (pattern, expected) in cases {
            assert_eq!(is_wildcard(pattern), *expected, "is_wildcard({pattern:?})");
        }
    }
}
