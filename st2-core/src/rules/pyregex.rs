//! Python `re` and `fnmatch` patterns on Rust engines, compiled once and cached.
//!
//! Owns the translation of Python regular expressions to `fancy-regex` (backreferences and
//! lookaround as in Python, `\Z`, `$` matching before a final newline, `(?P=name)`,
//! `(?#comment)`, a `{` that is not a quantifier being literal) and of shell wildcards to
//! `regex` the way `fnmatch.translate` does, plus a bounded process-wide cache for patterns
//! that only exist after rendering. It does not decide when an operator uses them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use super::operators::OperatorError;

/// How a pattern is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// `re.compile(p, re.DOTALL).match(v)`: anchored at the start (`matchregex`).
    MatchDotall,
    /// `re.compile(p).search(v)` (`regex`).
    Search,
    /// `re.compile(p, re.IGNORECASE).search(v)` (`iregex`).
    SearchIgnoreCase,
    /// `fnmatch.fnmatch(v, p)` on POSIX: the whole string, case-sensitive (`matchwildcard`).
    Wildcard,
}

/// A compiled pattern.
#[derive(Debug)]
pub struct PyRegex {
    /// Used when the subject does not end with a newline (there Python's `$` is `\z`).
    fast: fancy_regex::Regex,
    /// Python's `$` as `(?=\n?\z)`, for subjects ending with a newline; `None` when the
    /// pattern has no such `$`.
    exact: Option<fancy_regex::Regex>,
}

impl PyRegex {
    /// Compiles `pattern` for `flavor`; the error text is what Python's `re.error` would carry
    /// (or the Rust engine's reason where Python would have accepted the pattern).
    pub fn compile(pattern: &str, flavor: Flavor) -> Result<PyRegex, OperatorError> {
        if flavor == Flavor::Wildcard {
            let fast = fancy_regex::Regex::new(&fnmatch_translate(pattern))
                .map_err(|e| OperatorError::Regex(e.to_string()))?;
            return Ok(PyRegex { fast, exact: None });
        }
        let translated = translate(pattern)?;
        let wrap = |body: &str| match flavor {
            Flavor::MatchDotall => format!("(?s)\\A(?:{body})"),
            Flavor::SearchIgnoreCase => format!("(?i)(?:{body})"),
            Flavor::Search | Flavor::Wildcard => body.to_string(),
        };
        let build = |body: &str| {
            fancy_regex::Regex::new(&wrap(body)).map_err(|e| OperatorError::Regex(e.to_string()))
        };
        let fast = build(&translated.fast)?;
        let exact = match &translated.exact {
            Some(body) => Some(build(body)?),
            None => None,
        };
        Ok(PyRegex { fast, exact })
    }

    /// Whether the pattern matches `subject` (anchoring per flavor).
    pub fn is_match(&self, subject: &str) -> Result<bool, OperatorError> {
        let regex = match &self.exact {
            Some(exact) if subject.ends_with('\n') => exact,
            _ => &self.fast,
        };
        regex
            .is_match(subject)
            .map_err(|e| OperatorError::Regex(e.to_string()))
    }
}

/// A translated Python pattern.
struct Translated {
    /// `$` (outside multiline mode) as `\z`.
    fast: String,
    /// `$` as `(?=\n?\z)`, when there was such a `$`.
    exact: Option<String>,
}

/// Translates Python `re` syntax to `fancy-regex` syntax.
fn translate(pattern: &str) -> Result<Translated, OperatorError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut fast = String::with_capacity(pattern.len() + 8);
    let mut exact = String::with_capacity(pattern.len() + 8);
    let mut has_dollar = false;
    // Multiline state: global flag, and a stack of groups (Some(flag) for scoped flag groups).
    let mut global_multiline = false;
    let mut groups: Vec<Option<bool>> = Vec::new();
    let multiline = |groups: &Vec<Option<bool>>, global: bool| {
        groups.iter().rev().find_map(|g| *g).unwrap_or(global)
    };
    let push = |fast: &mut String, exact: &mut String, s: &str| {
        fast.push_str(s);
        exact.push_str(s);
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(OperatorError::Regex(format!(
                        "bad escape (end of pattern) at position {i}"
                    )));
                };
                if next == 'Z' {
                    push(&mut fast, &mut exact, "\\z");
                } else if next.is_ascii_alphanumeric() {
                    push(&mut fast, &mut exact, &format!("\\{next}"));
                } else {
                    push(&mut fast, &mut exact, &escape_char(next));
                }
                i += 2;
            }
            '[' => {
                let (class, end) = translate_class(&chars, i)?;
                push(&mut fast, &mut exact, &class);
                i = end;
            }
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    // (?#comment)
                    if chars.get(i + 2) == Some(&'#') {
                        let close = chars[i..].iter().position(|&c| c == ')').ok_or_else(|| {
                            OperatorError::Regex(format!(
                                "missing ), unterminated comment at position {i}"
                            ))
                        })?;
                        i += close + 1;
                        continue;
                    }
                    // (?P=name) backreference
                    if chars.get(i + 2) == Some(&'P') && chars.get(i + 3) == Some(&'=') {
                        let close = chars[i..].iter().position(|&c| c == ')').ok_or_else(|| {
                            OperatorError::Regex(format!(
                                "missing ), unterminated name at position {}",
                                i + 4
                            ))
                        })?;
                        let name: String = chars[i + 4..i + close].iter().collect();
                        push(&mut fast, &mut exact, &format!("\\k<{name}>"));
                        i += close + 1;
                        continue;
                    }
                    // Flag groups: (?flags) or (?flags-flags:...)
                    let mut j = i + 2;
                    let mut on = String::new();
                    let mut negative = false;
                    let mut off = String::new();
                    while let Some(&f) = chars.get(j) {
                        if f == '-' && !negative {
                            negative = true;
                        } else if "aiLmsux".contains(f) {
                            if negative {
                                off.push(f);
                            } else {
                                on.push(f);
                            }
                        } else {
                            break;
                        }
                        j += 1;
                    }
                    let is_flag_group = j > i + 2 && matches!(chars.get(j), Some(')' | ':'));
                    if is_flag_group {
                        let m = if on.contains('m') {
                            Some(true)
                        } else if off.contains('m') {
                            Some(false)
                        } else {
                            None
                        };
                        // Python's `u` is the default for str patterns; Rust does not need it.
                        let on_rust: String = on.chars().filter(|&f| f != 'u').collect();
                        let flags = if off.is_empty() {
                            on_rust
                        } else {
                            format!("{on_rust}-{off}")
                        };
                        if chars[j] == ')' {
                            if let Some(m) = m {
                                global_multiline = m;
                            }
                            if !flags.is_empty() {
                                push(&mut fast, &mut exact, &format!("(?{flags})"));
                            }
                        } else {
                            groups.push(m);
                            push(&mut fast, &mut exact, &format!("(?{flags}:"));
                        }
                        i = j + 1;
                        continue;
                    }
                }
                groups.push(None);
                push(&mut fast, &mut exact, "(");
                i += 1;
            }
            ')' => {
                groups.pop();
                push(&mut fast, &mut exact, ")");
                i += 1;
            }
            '$' => {
                if multiline(&groups, global_multiline) {
                    push(&mut fast, &mut exact, "$");
                } else {
                    has_dollar = true;
                    fast.push_str("\\z");
                    exact.push_str("(?=\\n?\\z)");
                }
                i += 1;
            }
            '{' => {
                // A quantifier is {m}, {m,}, {,n} or {m,n}; anything else is a literal brace.
                let close = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                let quant = close.and_then(|end| {
                    let inner: String = chars[i + 1..end].iter().collect();
                    let (lo, hi) = match inner.split_once(',') {
                        Some((lo, hi)) => (lo.to_string(), Some(hi.to_string())),
                        None => (inner.clone(), None),
                    };
                    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
                    let valid = digits(&lo)
                        && hi.as_deref().is_none_or(digits)
                        && !(lo.is_empty() && hi.as_deref().is_none_or(str::is_empty));
                    valid
                        .then(|| {
                            let lo = if lo.is_empty() { "0".to_string() } else { lo };
                            match hi {
                                Some(hi) => format!("{{{lo},{hi}}}"),
                                None => format!("{{{lo}}}"),
                            }
                        })
                        .map(|q| (q, end))
                });
                match quant {
                    Some((q, end)) => {
                        push(&mut fast, &mut exact, &q);
                        i = end + 1;
                    }
                    None => {
                        push(&mut fast, &mut exact, "\\{");
                        i += 1;
                    }
                }
            }
            '}' => {
                push(&mut fast, &mut exact, "\\}");
                i += 1;
            }
            c => {
                let mut buf = [0u8; 4];
                push(&mut fast, &mut exact, c.encode_utf8(&mut buf));
                i += 1;
            }
        }
    }
    Ok(Translated {
        fast,
        exact: has_dollar.then_some(exact),
    })
}

/// A character as a `\x{..}` escape: valid anywhere in both engines.
fn escape_char(c: char) -> String {
    format!("\\x{{{:X}}}", c as u32)
}

/// Translates a Python character class starting at `chars[start] == '['`; returns the Rust
/// class and the index after it. A leading `]` is literal; `[` and set-operation characters
/// inside are escaped (they are literal in Python).
fn translate_class(chars: &[char], start: usize) -> Result<(String, usize), OperatorError> {
    let mut out = String::from("[");
    let mut i = start + 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(OperatorError::Regex(format!(
                "unterminated character set at position {start}"
            )));
        };
        match c {
            ']' if !first => {
                out.push(']');
                return Ok((out, i + 1));
            }
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(OperatorError::Regex(format!(
                        "bad escape (end of pattern) at position {i}"
                    )));
                };
                if next.is_ascii_alphanumeric() {
                    out.push('\\');
                    out.push(next);
                } else {
                    out.push_str(&escape_char(next));
                }
                i += 2;
            }
            '-' => {
                out.push('-');
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' || c == ' ' => {
                out.push(c);
                i += 1;
            }
            c => {
                out.push_str(&escape_char(c));
                i += 1;
            }
        }
        first = false;
    }
}

/// `fnmatch.translate`: `*` any run, `?` one character, `[seq]`/`[!seq]` classes (a leading
/// `]` is literal, reversed ranges are dropped, an unclosed `[` is literal), whole-string,
/// newlines matched like any character.
pub fn fnmatch_translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^(?s:");
    let n = chars.len();
    let mut i = 0;
    let mut last_star = false;
    while i < n {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !last_star {
                    out.push_str(".*");
                }
                last_star = true;
                continue;
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < n && chars[j] == '!' {
                    j += 1;
                }
                if j < n && chars[j] == ']' {
                    j += 1;
                }
                while j < n && chars[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push_str("\\[");
                } else {
                    let mut k = i;
                    let negate = chars[k] == '!';
                    if negate {
                        k += 1;
                    }
                    // Items: single characters and ranges a-b (a leading or trailing '-' is
                    // literal).
                    let mut items: Vec<(char, char)> = Vec::new();
                    while k < j {
                        if k + 2 < j && chars[k + 1] == '-' {
                            items.push((chars[k], chars[k + 2]));
                            k += 3;
                        } else {
                            items.push((chars[k], chars[k]));
                            k += 1;
                        }
                    }
                    // Reversed ranges are empty in Python's translation.
                    items.retain(|(lo, hi)| lo <= hi);
                    i = j + 1;
                    if items.is_empty() {
                        out.push_str(if negate { "." } else { "[^\\x{0}-\\x{10FFFF}]" });
                    } else {
                        out.push('[');
                        if negate {
                            out.push('^');
                        }
                        for (lo, hi) in items {
                            out.push_str(&escape_char(lo));
                            if hi != lo {
                                out.push('-');
                                out.push_str(&escape_char(hi));
                            }
                        }
                        out.push(']');
                    }
                }
            }
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4]))),
        }
        last_star = false;
    }
    out.push_str(")\\z");
    out
}

/// Most patterns kept by the process-wide cache (it is cleared when full).
const CACHE_CAPACITY: usize = 4096;

type CacheMap = HashMap<(Flavor, String), Arc<Result<PyRegex, OperatorError>>>;

static CACHE: LazyLock<RwLock<CacheMap>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// The compiled form of `pattern`, from the process-wide cache (patterns rendered from
/// templates differ per event, so this is bounded).
pub fn cached(pattern: &str, flavor: Flavor) -> Arc<Result<PyRegex, OperatorError>> {
    let key = (flavor, pattern.to_string());
    if let Some(hit) = CACHE
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Arc::clone(hit);
    }
    let compiled = Arc::new(PyRegex::compile(pattern, flavor));
    let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(key, Arc::clone(&compiled));
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, flavor: Flavor, subject: &str) -> bool {
        PyRegex::compile(pattern, flavor)
            .and_then(|r| r.is_match(subject))
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    #[test]
    fn python_regex_semantics() {
        use Flavor::*;
        let cases = [
            ("foo$", Search, "foo\n", true),
            ("foo$", Search, "foo\n\n", false),
            ("foo\\Z", Search, "foo\n", false),
            ("foo\\Z", Search, "xfoo", true),
            ("(?m)^b$", Search, "a\nb\nc", true),
            ("^b$", Search, "a\nb\nc", false),
            ("b", MatchDotall, "ab", false),
            ("a.b", MatchDotall, "a\nb", true),
            ("a.b", Search, "a\nb", false),
            ("ABC", SearchIgnoreCase, "xabcx", true),
            ("(a)\\1", Search, "xaa", true),
            ("(?P<x>a)(?P=x)", Search, "aa", true),
            ("foo(?=bar)", Search, "foobar", true),
            ("a{", Search, "a{", true),
            ("a{,2}b", MatchDotall, "aab", true),
            ("x{2}", Search, "xx", true),
            ("[[]", Search, "[", true),
            ("[]a]", Search, "]", true),
            ("[a&&b]", Search, "&", true),
            ("a(?#comment)b", Search, "ab", true),
            ("\\'", Search, "'", true),
            ("^\\d+$", Search, "١٢", true),
        ];
        for (pattern, flavor, subject, want) in cases {
            assert_eq!(
                m(pattern, flavor, subject),
                want,
                "{pattern:?} on {subject:?}"
            );
        }
        assert!(PyRegex::compile("(a", Flavor::Search).is_err());
    }

    #[test]
    fn fnmatch_semantics() {
        let cases = [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.TXT", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "multi\nline", true),
            ("[!a]x", "bx", true),
            ("[!a]x", "ax", false),
            ("[a-c]", "b", true),
            ("[z-a]", "z", false),
            ("[!z-a]x", "qx", true),
            ("[a-]", "-", true),
            ("[]]", "]", true),
            ("[", "[", true),
            ("[!]", "[!]", true),
            ("a.b", "axb", false),
            ("(x)", "(x)", true),
            ("**a", "ba", true),
        ];
        for (pattern, subject, want) in cases {
            assert_eq!(
                m(pattern, Flavor::Wildcard, subject),
                want,
                "{pattern:?} ({}) on {subject:?}",
                fnmatch_translate(pattern)
            );
        }
    }

    #[test]
    fn cache_returns_same_compiled_pattern() {
        let a = cached("^x+$", Flavor::Search);
        let b = cached("^x+$", Flavor::Search);
        assert!(Arc::ptr_eq(&a, &b));
    }
}
