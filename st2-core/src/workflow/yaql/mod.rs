//! A YAQL evaluator over JSON values: the language as Orquesta workflows use it inside `<% %>`.
//! Pure: no I/O. Owns parsing ([`parse`] compiles once), evaluation ([`Expr::eval`]) and YAQL's
//! standard library; Orquesta's own functions (`ctx()`, `result()`, `item()`, `task_status()`,
//! `st2kv()`, ...) are not here but come in through the [`Functions`] hook, which the workflow
//! engine implements.
//!
//! # Layout
//! - `lexer`: tokens with their column.
//! - `parser`: the grammar and YAQL's operator precedence, producing the AST.
//! - `eval`: operators, paths, indexing, `->`, variables and lambdas (`$` rebound per item).
//! - `functions`: the standard library (strings, collections, queries, regexes, conversions).
//! - `value`: truthiness, equality, ordering, `str()`/`repr` shared by operators and functions.
//! - `regex`: Python-syntax regexes, compiled once per pattern and cached.
//!
//! Semantics follow YAQL 1.x (checked against its implementation): integer division of two
//! integers floors, `and`/`or` return an operand (Python truthiness), `null` sorts before
//! everything, `$.missing` on a dict is an error while `dict.get(key)` is not, `$undefined` is
//! `null`, `str()` of a list prints like a Python tuple. A bare word is a string (`ctx(foo)` is
//! `ctx("foo")`). A regex made by `regex(pattern)` is represented as a one-key object
//! `{"__yaql_regex__": pattern}`.

mod eval;
mod functions;
mod lexer;
mod parser;
mod regex;
#[cfg(test)]
mod tests;
mod value;

use serde_json::Value;

/// What went wrong while parsing or evaluating a YAQL expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YaqlError {
    /// The expression is not valid YAQL; `column` is 1-based, in characters.
    #[error("YAQL syntax error at column {column}: {message}")]
    Syntax {
        /// Where the offending token starts (1-based).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// No function or method of that name exists (neither the hook's nor the standard library's).
    #[error("no function named \"{name}\"")]
    UnknownFunction {
        /// The name as called.
        name: String,
    },
    /// A function was called with arguments it does not accept, or failed.
    #[error("function \"{function}\": {message}")]
    Function {
        /// The function's name.
        function: String,
        /// Why it failed.
        message: String,
    },
    /// An operator was applied to operands it does not accept (`'a' + 1`, `1 / 0`).
    #[error("operator \"{op}\": {message}")]
    Operator {
        /// The operator as written.
        op: String,
        /// Why it failed.
        message: String,
    },
    /// A key or attribute is missing (`$.missing`, `{a => 1}[b]`), or an index out of range.
    #[error("{message}")]
    Lookup {
        /// What could not be found, and in what.
        message: String,
    },
}

impl YaqlError {
    pub(crate) fn syntax(column: usize, message: impl Into<String>) -> Self {
        YaqlError::Syntax {
            column,
            message: message.into(),
        }
    }

    pub(crate) fn func(function: &str, message: impl Into<String>) -> Self {
        YaqlError::Function {
            function: function.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn op(op: &str, message: impl Into<String>) -> Self {
        YaqlError::Operator {
            op: op.to_string(),
            message: message.into(),
        }
    }
}

/// Functions supplied from outside the standard library (Orquesta's `ctx()`, `result()`, ...).
///
/// The evaluator asks the hook first, with the arguments already evaluated (for a method call
/// `x.f(a)` the receiver `x` is the first argument; a bare word such as `foo` in `ctx(foo)` is
/// the string `"foo"`). Answer `None` for a name that is not yours: the evaluator then tries the
/// standard library and fails with [`YaqlError::UnknownFunction`]. The standard library's
/// functions that take lambdas (`select`, `where`, `let`, ...) never reach the hook.
pub trait Functions {
    /// Calls `name` with positional `args`; `None` when the name is not this hook's.
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, YaqlError>>;

    /// Calls `name` with positional and keyword (`name => value`) arguments. By default keyword
    /// arguments are appended, in order, after the positional ones and [`Functions::call`] is
    /// used.
    fn call_with_keywords(
        &self,
        name: &str,
        args: &[Value],
        keywords: &[(String, Value)],
    ) -> Option<Result<Value, YaqlError>> {
        if keywords.is_empty() {
            return self.call(name, args);
        }
        let mut all = args.to_vec();
        all.extend(keywords.iter().map(|(_, v)| v.clone()));
        self.call(name, &all)
    }
}

/// A hook with no functions: only the standard library.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFunctions;

impl Functions for NoFunctions {
    fn call(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, YaqlError>> {
        None
    }
}

/// A parsed YAQL expression: parse once with [`parse`], evaluate many times.
#[derive(Debug, Clone)]
pub struct Expr {
    root: parser::Node,
}

impl Expr {
    /// Evaluates against `root` (the value of `$`), with `functions` tried before the standard
    /// library.
    pub fn eval(&self, root: &Value, functions: &dyn Functions) -> Result<Value, YaqlError> {
        eval::evaluate(&self.root, root, functions)
    }
}

/// Parses a YAQL expression (without the `<% %>` delimiters).
pub fn parse(src: &str) -> Result<Expr, YaqlError> {
    Ok(Expr {
        root: parser::parse_node(src)?,
    })
}

/// Parses and evaluates `src` in one go (prefer [`parse`] once and [`Expr::eval`] per use).
pub fn evaluate(src: &str, root: &Value, functions: &dyn Functions) -> Result<Value, YaqlError> {
    parse(src)?.eval(root, functions)
}
