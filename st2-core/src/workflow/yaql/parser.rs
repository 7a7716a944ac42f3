//! The YAQL grammar: tokens to an AST ([`Node`]), by precedence climbing over YAQL's operator
//! table. Owns syntax only; what the nodes mean is in [`super::eval`].
//!
//! Precedence, loosest to tightest, as in YAQL's standard operator table:
//! `->` (right) < `or` < `and` < `not` (prefix) < `= != < <= > >= in` < `+ -` < `* / mod`
//! < `=~ !~` < unary `+ -` < indexer `x[...]` < `.` and `?.`.

use serde_json::Value;

use super::lexer::{tokenize, Tok, Token};
use super::YaqlError;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    And,
    Or,
    Match,
    NotMatch,
}

impl BinOp {
    /// The operator as written in YAQL (for error messages).
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "mod",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Match => "=~",
            BinOp::NotMatch => "!~",
        }
    }
}

/// A prefix operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Plus,
    Not,
}

/// A call argument: positional, or `key => value` (keyword arguments, `dict(a => 1)`, `switch`).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Pos(Node),
    Pair(Node, Node),
}

/// A node of a parsed expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A literal.
    Const(Value),
    /// A bare word: evaluates to its own text (`ctx(foo)` passes `"foo"`).
    Keyword(String),
    /// `$` (empty name), `$name`, `$1`.
    Var(String),
    Unary(UnOp, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    /// `[a, b]`.
    List(Vec<Node>),
    /// `{k => v}`.
    Map(Vec<(Node, Node)>),
    /// `name(args)`, or `receiver.name(args)` where the receiver becomes the first argument.
    /// `null_safe` for `x?.f()`: null when the receiver is null.
    Call {
        name: String,
        receiver: Option<Box<Node>>,
        args: Vec<Arg>,
        null_safe: bool,
    },
    /// `obj.name` (`null_safe` for `?.`).
    Attr {
        obj: Box<Node>,
        name: String,
        null_safe: bool,
    },
    /// `obj[index]` or `obj[key, default]`.
    Index {
        obj: Box<Node>,
        args: Vec<Node>,
    },
    /// `left -> right`: `right` evaluated with `$` (and `let` variables) from `left`.
    Chain(Box<Node>, Box<Node>),
}

/// Binding powers (higher binds tighter).
const BP_CHAIN: u8 = 1;
const BP_OR: u8 = 2;
const BP_AND: u8 = 3;
const BP_NOT: u8 = 4;
const BP_CMP: u8 = 5;
const BP_ADD: u8 = 6;
const BP_MUL: u8 = 7;
const BP_MATCH: u8 = 8;
const BP_UNARY: u8 = 9;
const BP_INDEX: u8 = 10;
const BP_DOT: u8 = 11;

/// Parses a whole expression.
pub(crate) fn parse_node(src: &str) -> Result<Node, YaqlError> {
    let tokens = tokenize(src)?;
    let end_col = src.chars().count() + 1;
    let mut p = Parser {
        tokens,
        pos: 0,
        end_col,
    };
    if p.tokens.is_empty() {
        return Err(YaqlError::syntax(1, "empty expression"));
    }
    let node = p.expr(0)?;
    if let Some(t) = p.peek() {
        return Err(YaqlError::syntax(
            t.col,
            format!("unexpected {}", describe(&t.tok)),
        ));
    }
    Ok(node)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end_col: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Dollar(n) => format!("'${n}'"),
        Tok::Int(n) => format!("'{n}'"),
        Tok::Float(f) => format!("'{f}'"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Func(s) => format!("'{s}('"),
        Tok::Bool(b) => format!("'{b}'"),
        Tok::Null => "'null'".to_string(),
        Tok::Op(o) => format!("'{o}'"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.peek() {
            Some(Token {
                tok: Tok::Op(o), ..
            }) => Some(o),
            _ => None,
        }
    }

    fn next(&mut self) -> Result<Token, YaqlError> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| YaqlError::syntax(self.end_col, "unexpected end of expression"))?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, op: &str) -> Result<(), YaqlError> {
        let t = self.next()?;
        if t.tok == Tok::Op(op_static(op)) {
            Ok(())
        } else {
            Err(YaqlError::syntax(
                t.col,
                format!("expected '{op}', found {}", describe(&t.tok)),
            ))
        }
    }

    /// Parses an expression whose operators bind tighter than `min_bp`.
    fn expr(&mut self, min_bp: u8) -> Result<Node, YaqlError> {
        let mut left = self.prefix()?;
        loop {
            let Some(op) = self.peek_op() else {
                if let Some(t) = self.peek() {
                    // Two operands in a row: `1 2`, `$ x`.
                    if !matches!(t.tok, Tok::Op(_)) {
                        return Err(YaqlError::syntax(
                            t.col,
                            format!("unexpected {}", describe(&t.tok)),
                        ));
                    }
                }
                break;
            };
            let col = self.peek().map(|t| t.col).unwrap_or(self.end_col);
            let (bp, right_assoc) = match op {
                "->" => (BP_CHAIN, true),
                "or" => (BP_OR, false),
                "and" => (BP_AND, false),
                "=" | "!=" | "<" | "<=" | ">" | ">=" | "in" => (BP_CMP, false),
                "+" | "-" => (BP_ADD, false),
                "*" | "/" | "mod" => (BP_MUL, false),
                "=~" | "!~" => (BP_MATCH, false),
                "[" => (BP_INDEX, false),
                "." | "?." => (BP_DOT, false),
                _ => break,
            };
            if bp < min_bp || (bp == min_bp && !right_assoc) {
                break;
            }
            self.pos += 1;
            left = match op {
                "[" => {
                    let args = self.positional_list("]")?;
                    if args.is_empty() {
                        return Err(YaqlError::syntax(col, "empty indexer"));
                    }
                    Node::Index {
                        obj: Box::new(left),
                        args,
                    }
                }
                "." | "?." => self.member(left, op == "?.")?,
                "->" => Node::Chain(Box::new(left), Box::new(self.expr(bp)?)),
                _ => {
                    let right = self.expr(bp)?;
                    let bin = match op {
                        "or" => BinOp::Or,
                        "and" => BinOp::And,
                        "=" => BinOp::Eq,
                        "!=" => BinOp::Ne,
                        "<" => BinOp::Lt,
                        "<=" => BinOp::Le,
                        ">" => BinOp::Gt,
                        ">=" => BinOp::Ge,
                        "in" => BinOp::In,
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        "/" => BinOp::Div,
                        "mod" => BinOp::Mod,
                        "=~" => BinOp::Match,
                        _ => BinOp::NotMatch,
                    };
                    Node::Binary(bin, Box::new(left), Box::new(right))
                }
            };
        }
        Ok(left)
    }

    /// The right side of `.`: an attribute name or a method call.
    fn member(&mut self, obj: Node, null_safe: bool) -> Result<Node, YaqlError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(name) => Ok(Node::Attr {
                obj: Box::new(obj),
                name,
                null_safe,
            }),
            Tok::Func(name) => {
                let args = self.args(")")?;
                Ok(Node::Call {
                    name,
                    receiver: Some(Box::new(obj)),
                    args,
                    null_safe,
                })
            }
            // `$.true`, `$.null` and the like: keys that happen to be keywords.
            Tok::Bool(b) => Ok(Node::Attr {
                obj: Box::new(obj),
                name: b.to_string(),
                null_safe,
            }),
            Tok::Null => Ok(Node::Attr {
                obj: Box::new(obj),
                name: "null".into(),
                null_safe,
            }),
            other => Err(YaqlError::syntax(
                t.col,
                format!(
                    "expected a name or a method call after '.', found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn prefix(&mut self) -> Result<Node, YaqlError> {
        let t = self.next()?;
        Ok(match t.tok {
            Tok::Int(n) => Node::Const(Value::from(n)),
            Tok::Float(f) => Node::Const(Value::from(f)),
            Tok::Str(s) => Node::Const(Value::String(s)),
            Tok::Bool(b) => Node::Const(Value::Bool(b)),
            Tok::Null => Node::Const(Value::Null),
            Tok::Ident(s) => Node::Keyword(s),
            Tok::Dollar(name) => Node::Var(name),
            Tok::Func(name) => {
                let args = self.args(")")?;
                Node::Call {
                    name,
                    receiver: None,
                    args,
                    null_safe: false,
                }
            }
            Tok::Op("(") => {
                let inner = self.expr(0)?;
                self.expect(")")?;
                inner
            }
            Tok::Op("[") => Node::List(self.positional_list("]")?),
            Tok::Op("{") => {
                let mut pairs = Vec::new();
                for arg in self.args("}")? {
                    match arg {
                        Arg::Pair(k, v) => pairs.push((k, v)),
                        Arg::Pos(_) => {
                            return Err(YaqlError::syntax(
                                t.col,
                                "dict literal entries must be 'key => value'",
                            ))
                        }
                    }
                }
                Node::Map(pairs)
            }
            Tok::Op("-") => Node::Unary(UnOp::Neg, Box::new(self.expr(BP_UNARY)?)),
            Tok::Op("+") => Node::Unary(UnOp::Plus, Box::new(self.expr(BP_UNARY)?)),
            Tok::Op("not") => Node::Unary(UnOp::Not, Box::new(self.expr(BP_NOT)?)),
            other => {
                return Err(YaqlError::syntax(
                    t.col,
                    format!("unexpected {}", describe(&other)),
                ))
            }
        })
    }

    /// Comma-separated arguments up to `close`, each `value` or `key => value`.
    fn args(&mut self, close: &str) -> Result<Vec<Arg>, YaqlError> {
        let mut out = Vec::new();
        if self.peek_op() == Some(op_static(close)) {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            let value = self.expr(0)?;
            if self.peek_op() == Some("=>") {
                self.pos += 1;
                let v = self.expr(0)?;
                out.push(Arg::Pair(value, v));
            } else {
                out.push(Arg::Pos(value));
            }
            let t = self.next()?;
            match t.tok {
                Tok::Op(",") => continue,
                Tok::Op(o) if o == close => return Ok(out),
                other => {
                    return Err(YaqlError::syntax(
                        t.col,
                        format!("expected ',' or '{close}', found {}", describe(&other)),
                    ))
                }
            }
        }
    }

    /// Comma-separated positional values up to `close`.
    fn positional_list(&mut self, close: &str) -> Result<Vec<Node>, YaqlError> {
        let col = self.peek().map(|t| t.col).unwrap_or(self.end_col);
        self.args(close)?
            .into_iter()
            .map(|a| match a {
                Arg::Pos(n) => Ok(n),
                Arg::Pair(..) => Err(YaqlError::syntax(col, "unexpected '=>'")),
            })
            .collect()
    }
}

/// The static spelling of a punctuation token.
fn op_static(op: &str) -> &'static str {
    match op {
        ")" => ")",
        "]" => "]",
        "}" => "}",
        _ => "(",
    }
}
