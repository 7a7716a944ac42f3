//! The `jsonpath_rw` grammar: its lexer (identifiers with `-`, quoted names, `` `this` ``,
//! signed numbers) and its parser, with ply's precedence and error messages.

use super::{Expr, JsonPathError};

/// Parses a whole path.
pub(super) fn parse(source: &str) -> Result<Expr, JsonPathError> {
    let tokens = lex(source)?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.expr(0)?;
    if let Some(tok) = parser.tokens.get(parser.pos) {
        return Err(tok.parse_error());
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    DoubleDot,
    Number(i64),
    Id(String),
    Named(String),
    Where,
    Lit(char),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    line: usize,
    col: usize,
}

impl Token {
    fn parse_error(&self) -> JsonPathError {
        let (value, kind) = match &self.kind {
            Kind::DoubleDot => ("..".to_string(), "DOUBLEDOT".to_string()),
            Kind::Number(n) => (n.to_string(), "NUMBER".to_string()),
            Kind::Id(s) => (s.clone(), "ID".to_string()),
            Kind::Named(s) => (s.clone(), "NAMED_OPERATOR".to_string()),
            Kind::Where => ("where".to_string(), "WHERE".to_string()),
            Kind::Lit(c) => (c.to_string(), c.to_string()),
        };
        JsonPathError::Syntax(format!(
            "Parse error at {}:{} near token {value} ({kind})",
            self.line, self.col
        ))
    }
}

fn lex(source: &str) -> Result<Vec<Token>, JsonPathError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut line_start = 0;
    let mut i = 0;
    let id_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == '@';
    let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '-');
    while i < chars.len() {
        let c = chars[i];
        let col = i - line_start;
        let mut push = |kind| tokens.push(Token { kind, line, col });
        match c {
            ' ' | '\t' => i += 1,
            '\n' => {
                line += 1;
                line_start = i;
                i += 1;
            }
            c if id_start(c) => {
                let start = i;
                while i < chars.len() && id_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                push(if word == "where" {
                    Kind::Where
                } else {
                    Kind::Id(word)
                });
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<i64>()
                    .map_err(|_| JsonPathError::Syntax(format!("number out of range: {text}")))?;
                push(Kind::Number(n));
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                let end_col = loop {
                    match chars.get(i) {
                        None => {
                            return Err(JsonPathError::Syntax(
                                "Unexpected EOF in string literal or identifier".into(),
                            ))
                        }
                        Some('\\') => {
                            if let Some(&escaped) = chars.get(i + 1) {
                                text.push(escaped);
                                i += 2;
                            } else {
                                return Err(JsonPathError::Syntax(
                                    "Unexpected EOF in string literal or identifier".into(),
                                ));
                            }
                        }
                        Some(&ch) if ch == quote => {
                            // ply reports the position of the closing quote.
                            let end = i - line_start;
                            i += 1;
                            break end;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                };
                let kind = if quote == '`' {
                    Kind::Named(text)
                } else {
                    Kind::Id(text)
                };
                tokens.push(Token {
                    kind,
                    line,
                    col: end_col,
                });
            }
            '.' if chars.get(i + 1) == Some(&'.') => {
                push(Kind::DoubleDot);
                i += 2;
            }
            '*' | '.' | '[' | ']' | '(' | ')' | '$' | ',' | ':' | '|' | '&' => {
                push(Kind::Lit(c));
                i += 1;
            }
            other => {
                return Err(JsonPathError::Syntax(format!(
                    "Error on line {line}, col {col}: Unexpected character: {other} "
                )))
            }
        }
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// What `ply` raises when the input ends early (`p_error(None)`).
fn eof_error() -> JsonPathError {
    JsonPathError::Syntax("'NoneType' object has no attribute 'lineno'".into())
}

impl Parser {
    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn next(&mut self) -> Result<Token, JsonPathError> {
        let tok = self.tokens.get(self.pos).cloned().ok_or_else(eof_error)?;
        self.pos += 1;
        Ok(tok)
    }

    fn expect(&mut self, c: char) -> Result<(), JsonPathError> {
        let tok = self.next()?;
        if tok.kind == Kind::Lit(c) {
            Ok(())
        } else {
            Err(tok.parse_error())
        }
    }

    /// Binary operators by binding power (ply's precedence list, lowest first).
    fn binary_power(kind: &Kind) -> Option<u8> {
        match kind {
            Kind::DoubleDot => Some(1),
            Kind::Lit('.') => Some(2),
            Kind::Lit('|') => Some(3),
            Kind::Lit('&') => Some(4),
            Kind::Where => Some(5),
            _ => None,
        }
    }

    fn expr(&mut self, min_power: u8) -> Result<Expr, JsonPathError> {
        let mut lhs = self.atom()?;
        while let Some(kind) = self.peek() {
            if *kind == Kind::Lit('[') {
                self.pos += 1;
                let inner = self.bracket()?;
                lhs = Expr::Child(Box::new(lhs), Box::new(inner));
                continue;
            }
            let Some(power) = Self::binary_power(kind) else {
                break;
            };
            if power < min_power {
                break;
            }
            let op = self.next()?.kind;
            let rhs = self.expr(power + 1)?;
            let (l, r) = (Box::new(lhs), Box::new(rhs));
            lhs = match op {
                Kind::DoubleDot => Expr::Descendants(l, r),
                Kind::Lit('.') => Expr::Child(l, r),
                Kind::Lit('|') => Expr::Union(l, r),
                Kind::Lit('&') => Expr::Intersect(l, r),
                _ => Expr::Where(l, r),
            };
        }
        Ok(lhs)
    }

    fn fields(&mut self, first: String) -> Result<Expr, JsonPathError> {
        let mut names = vec![first];
        while self.peek() == Some(&Kind::Lit(',')) {
            self.pos += 1;
            let tok = self.next()?;
            match tok.kind {
                Kind::Id(name) => names.push(name),
                _ => return Err(tok.parse_error()),
            }
        }
        Ok(Expr::Fields(names))
    }

    fn atom(&mut self) -> Result<Expr, JsonPathError> {
        let tok = self.next()?;
        match tok.kind {
            Kind::Id(name) => self.fields(name),
            Kind::Lit('*') => Ok(Expr::Fields(vec!["*".into()])),
            Kind::Lit('$') => Ok(Expr::Root),
            Kind::Lit('[') => self.bracket(),
            Kind::Lit('(') => {
                let inner = self.expr(0)?;
                self.expect(')')?;
                Ok(inner)
            }
            Kind::Named(name) => match name.as_str() {
                "this" => Ok(Expr::This),
                "parent" => Ok(Expr::Parent),
                other => Err(JsonPathError::Syntax(format!(
                    "Unknown named operator `{other}` at {}:{}",
                    tok.line, tok.col
                ))),
            },
            _ => Err(tok.parse_error()),
        }
    }

    /// The inside of `[...]`, the `[` consumed: an index, a slice or field names.
    fn bracket(&mut self) -> Result<Expr, JsonPathError> {
        let tok = self.next()?;
        let expr = match tok.kind {
            Kind::Number(n) => {
                if self.peek() == Some(&Kind::Lit(':')) {
                    self.pos += 1;
                    Expr::Slice(Some(n), self.maybe_number())
                } else {
                    Expr::Index(n)
                }
            }
            Kind::Lit(':') => Expr::Slice(None, self.maybe_number()),
            Kind::Lit('*') => Expr::Slice(None, None),
            Kind::Id(name) => self.fields(name)?,
            _ => return Err(tok.parse_error()),
        };
        self.expect(']')?;
        Ok(expr)
    }

    fn maybe_number(&mut self) -> Option<i64> {
        if let Some(Kind::Number(n)) = self.peek() {
            let n = *n;
            self.pos += 1;
            Some(n)
        } else {
            None
        }
    }
}
