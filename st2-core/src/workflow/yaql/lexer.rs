//! YAQL tokens: turns the source of one expression into a list of tokens with their column.
//! Owns only the lexical rules (numbers, the three quoting styles, `$name`, operators, keyword
//! operators such as `and`/`mod`); the grammar is in [`super::parser`].

use super::YaqlError;

/// One lexical token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `$`, `$name` or `$1`: the name without the dollar (empty for `$`).
    Dollar(String),
    /// An integer literal.
    Int(i64),
    /// A float literal (`1.5`).
    Float(f64),
    /// A quoted string (single, double or back quotes), escapes decoded.
    Str(String),
    /// A bare word that is not an operator: a keyword constant (evaluates to its own text).
    Ident(String),
    /// A word immediately followed by `(`: a function or method name.
    Func(String),
    /// `true`, `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An operator or punctuation (`.`, `?.`, `+`, `mod`, `=>`, `(`, ...).
    Op(&'static str),
}

/// A token and the 1-based column (in characters) where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Symbol operators, longest first so that `>=` wins over `>`.
const SYMBOLS: &[&str] = &[
    "?.", "=~", "!~", ">=", "<=", "!=", "->", "=>", ".", "+", "-", "*", "/", ">", "<", "=", "(",
    ")", "[", "]", "{", "}", ",",
];

/// Word operators: these words are never keyword constants.
const WORD_OPS: &[&str] = &["mod", "in", "not", "and", "or"];

/// Splits `src` into tokens.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, YaqlError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '$' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Dollar(chars[start..i].iter().collect()),
                col,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let mut is_float = false;
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                is_float = true;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < chars.len() && is_word(chars[i]) {
                return Err(YaqlError::syntax(
                    col,
                    format!("malformed number near '{}'", chars[i]),
                ));
            }
            let text: String = chars[start..i].iter().collect();
            let tok = if is_float {
                Tok::Float(
                    text.parse()
                        .map_err(|_| YaqlError::syntax(col, "malformed number"))?,
                )
            } else {
                match text.parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => Tok::Float(
                        text.parse()
                            .map_err(|_| YaqlError::syntax(col, "malformed number"))?,
                    ),
                }
            };
            out.push(Token { tok, col });
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            let (s, next) = read_string(&chars, i)?;
            out.push(Token {
                tok: Tok::Str(s),
                col,
            });
            i = next;
            continue;
        }
        if is_word(c) {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = if i < chars.len() && chars[i] == '(' {
                i += 1;
                Tok::Func(word)
            } else if let Some(op) = WORD_OPS.iter().find(|w| **w == word) {
                Tok::Op(op)
            } else {
                match word.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "null" => Tok::Null,
                    _ => Tok::Ident(word),
                }
            };
            out.push(Token { tok, col });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            Some(op) => {
                out.push(Token {
                    tok: Tok::Op(op),
                    col,
                });
                i += op.chars().count();
            }
            None => return Err(YaqlError::syntax(col, format!("illegal character '{c}'"))),
        }
    }
    Ok(out)
}

/// A character of a name (`\w` in Python's regex dialect).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads the quoted string starting at `chars[start]`; returns its value and the index after it.
/// Back-quoted strings are verbatim except for `` \` ``.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), YaqlError> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if quote == '`' {
                if n != '`' {
                    s.push('\\');
                }
                s.push(n);
                i += 2;
                continue;
            }
            i += 2;
            match n {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0'..='7' => {
                    // Octal escape: up to three digits.
                    let mut code = n.to_digit(8).unwrap_or(0);
                    let mut taken = 0;
                    while taken < 2 && i < chars.len() && chars[i].is_digit(8) {
                        code = code * 8 + chars[i].to_digit(8).unwrap_or(0);
                        i += 1;
                        taken += 1;
                    }
                    s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                'a' => s.push('\u{7}'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'v' => s.push('\u{b}'),
                '\\' | '\'' | '"' => s.push(n),
                'x' | 'u' | 'U' => {
                    let len = match n {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars[i..chars.len().min(i + len)].iter().collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == len)
                        .and_then(char::from_u32)
                        .ok_or_else(|| YaqlError::syntax(i - 1, "malformed escape sequence"))?;
                    s.push(ch);
                    i += len;
                }
                other => {
                    // Python keeps unknown escapes as they are.
                    s.push('\\');
                    s.push(other);
                }
            }
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(YaqlError::syntax(start + 1, "unterminated string"))
}
