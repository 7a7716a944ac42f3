//! Evaluation of a parsed YAQL expression: variables and `$`, paths (`.`/`?.`), indexing,
//! operators, `->`, and the standard functions that take lambdas (`select`, `where`, `let`,
//! `switch`, ...), whose arguments are evaluated per item with `$` rebound to the item. Eager
//! functions are dispatched to the [`Functions`] hook first, then to [`super::functions`].
//!
//! Values are borrowed from the root data wherever possible (`$.a.b` copies only the result).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::functions::{self, compare, equals, num, truthy, type_name, Num};
use super::parser::{Arg, BinOp, Node, UnOp};
use super::{Functions, YaqlError};

/// Variables visible at one point: `$` (when rebound) and named variables, then the parent's.
struct Scope<'a> {
    parent: Option<&'a Scope<'a>>,
    /// The value of `$` in this scope, if rebound here.
    dollar: Option<&'a Value>,
    /// Named variables bound here (`let`), names without the `$`.
    vars: &'a [(String, Value)],
}

impl<'a> Scope<'a> {
    fn lookup(&self, name: &str) -> Option<&'a Value> {
        let mut scope = Some(self);
        while let Some(s) = scope {
            if name.is_empty() {
                if let Some(d) = s.dollar {
                    return Some(d);
                }
            } else if let Some((_, v)) = s.vars.iter().find(|(n, _)| n == name) {
                return Some(v);
            } else if name == "1" && s.parent.is_some() {
                // In a lambda, `$1` is its first argument, the same as `$`.
                if let Some(d) = s.dollar {
                    return Some(d);
                }
            }
            scope = s.parent;
        }
        None
    }
}

/// Evaluates `node` with `$` = `root`.
pub(crate) fn evaluate(
    node: &Node,
    root: &Value,
    functions: &dyn Functions,
) -> Result<Value, YaqlError> {
    let scope = Scope {
        parent: None,
        dollar: Some(root),
        vars: &[],
    };
    Ok(Evaluator { functions }.eval(node, &scope)?.into_owned())
}

struct Evaluator<'f> {
    functions: &'f dyn Functions,
}

type Res<'a> = Result<Cow<'a, Value>, YaqlError>;

impl Evaluator<'_> {
    fn eval<'a>(&self, node: &'a Node, scope: &Scope<'a>) -> Res<'a> {
        match node {
            Node::Const(v) => Ok(Cow::Borrowed(v)),
            Node::Keyword(s) => Ok(Cow::Owned(Value::String(s.clone()))),
            Node::Var(name) => Ok(match scope.lookup(name) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(Value::Null),
            }),
            Node::List(items) => Ok(Cow::Owned(Value::Array(
                items
                    .iter()
                    .map(|n| self.owned(n, scope))
                    .collect::<Result<_, _>>()?,
            ))),
            Node::Map(pairs) => {
                let mut map = Map::new();
                for (k, v) in pairs {
                    let key = functions::key_string(&self.owned(k, scope)?);
                    map.insert(key, self.owned(v, scope)?);
                }
                Ok(Cow::Owned(Value::Object(map)))
            }
            Node::Unary(op, inner) => {
                let v = self.eval(inner, scope)?;
                Ok(Cow::Owned(unary(*op, &v)?))
            }
            Node::Binary(BinOp::And, l, r) => {
                let lv = self.eval(l, scope)?;
                if truthy(&lv) {
                    self.eval(r, scope)
                } else {
                    Ok(lv)
                }
            }
            Node::Binary(BinOp::Or, l, r) => {
                let lv = self.eval(l, scope)?;
                if truthy(&lv) {
                    Ok(lv)
                } else {
                    self.eval(r, scope)
                }
            }
            Node::Binary(op, l, r) => {
                let lv = self.eval(l, scope)?;
                let rv = self.eval(r, scope)?;
                Ok(Cow::Owned(binary(*op, &lv, &rv)?))
            }
            Node::Attr {
                obj,
                name,
                null_safe,
                ..
            } => {
                let v = self.eval(obj, scope)?;
                if *null_safe && v.is_null() {
                    return Ok(v);
                }
                attribute(v, name)
            }
            Node::Index { obj, args } => {
                let v = self.eval(obj, scope)?;
                let idx = self.eval(&args[0], scope)?;
                let default = match args.get(1) {
                    Some(d) => Some(self.owned(d, scope)?),
                    None => None,
                };
                if args.len() > 2 {
                    return Err(YaqlError::op("[]", "takes an index or a key and a default"));
                }
                index(v, &idx, default)
            }
            Node::Chain(left, right) => self.chain(left, right, scope),
            Node::Call {
                name,
                receiver,
                args,
                null_safe,
            } => self
                .call(name, receiver.as_deref(), args, *null_safe, scope)
                .map(Cow::Owned),
        }
    }

    fn owned<'a>(&self, node: &'a Node, scope: &Scope<'a>) -> Result<Value, YaqlError> {
        Ok(self.eval(node, scope)?.into_owned())
    }

    /// Evaluates a lambda body with `$` bound to `item`.
    fn apply<'a>(
        &self,
        body: &'a Node,
        scope: &Scope<'a>,
        item: &Value,
    ) -> Result<Value, YaqlError> {
        let child = Scope {
            parent: Some(scope),
            dollar: Some(item),
            vars: &[],
        };
        self.owned(body, &child)
    }

    /// `left -> right`: with `let(...)` on the left, `right` sees its variables; otherwise `$`
    /// in `right` is the value of `left`.
    fn chain<'a>(&self, left: &'a Node, right: &'a Node, scope: &Scope<'a>) -> Res<'a> {
        if let Node::Call {
            name,
            receiver,
            args,
            ..
        } = left
        {
            if name == "let" {
                let mut positional = Vec::new();
                if let Some(r) = receiver {
                    positional.push(self.owned(r, scope)?);
                }
                let mut vars = Vec::new();
                for arg in args {
                    match arg {
                        Arg::Pos(n) => positional.push(self.owned(n, scope)?),
                        Arg::Pair(k, v) => {
                            let key = self.keyword_name("let", k, scope)?;
                            vars.push((key, self.owned(v, scope)?));
                        }
                    }
                }
                for (i, v) in positional.iter().enumerate() {
                    vars.push(((i + 1).to_string(), v.clone()));
                }
                let dollar = positional.into_iter().next();
                let child = Scope {
                    parent: Some(scope),
                    dollar: dollar.as_ref(),
                    vars: &vars,
                };
                return Ok(Cow::Owned(self.owned(right, &child)?));
            }
        }
        let value = self.owned(left, scope)?;
        Ok(Cow::Owned(self.apply(right, scope, &value)?))
    }

    /// The name on the left of `=>` in a keyword argument.
    fn keyword_name<'a>(
        &self,
        function: &str,
        key: &'a Node,
        scope: &Scope<'a>,
    ) -> Result<String, YaqlError> {
        match key {
            Node::Keyword(k) => Ok(k.clone()),
            other => match self.owned(other, scope)? {
                Value::String(s) => Ok(s),
                v => Err(YaqlError::func(
                    function,
                    format!(
                        "keyword argument name must be a name, not {}",
                        type_name(&v)
                    ),
                )),
            },
        }
    }

    fn call<'a>(
        &self,
        name: &str,
        receiver: Option<&'a Node>,
        args: &'a [Arg],
        null_safe: bool,
        scope: &Scope<'a>,
    ) -> Result<Value, YaqlError> {
        let recv = match receiver {
            Some(r) => {
                let v = self.owned(r, scope)?;
                if null_safe && v.is_null() {
                    return Ok(Value::Null);
                }
                Some(v)
            }
            None => None,
        };
        if let Some(result) = self.lazy_call(name, recv.as_ref(), args, scope) {
            return result;
        }
        let mut positional: Vec<Value> = Vec::with_capacity(args.len() + 1);
        positional.extend(recv);
        let mut keywords = Vec::new();
        for arg in args {
            match arg {
                Arg::Pos(n) => positional.push(self.owned(n, scope)?),
                Arg::Pair(k, v) => {
                    let key = match k {
                        Node::Keyword(k) => k.clone(),
                        other => functions::key_string(&self.owned(other, scope)?),
                    };
                    keywords.push((key, self.owned(v, scope)?));
                }
            }
        }
        if let Some(result) = self
            .functions
            .call_with_keywords(name, &positional, &keywords)
        {
            return result;
        }
        functions::call(name, positional, keywords).unwrap_or_else(|| {
            Err(YaqlError::UnknownFunction {
                name: name.to_string(),
            })
        })
    }

    /// The standard functions whose arguments are lambdas; `None` for any other name.
    fn lazy_call<'a>(
        &self,
        name: &str,
        recv: Option<&Value>,
        args: &'a [Arg],
        scope: &Scope<'a>,
    ) -> Option<Result<Value, YaqlError>> {
        let kind = match name {
            "select" | "where" | "filter" | "any" | "all" | "orderBy" | "orderByDescending"
            | "selectMany" | "groupBy" | "toDict" | "takeWhile" | "skipWhile" | "indexWhere"
            | "switch" => name,
            _ => return None,
        };
        Some(self.lazy(kind, recv, args, scope))
    }

    fn lazy<'a>(
        &self,
        name: &str,
        recv: Option<&Value>,
        args: &'a [Arg],
        scope: &Scope<'a>,
    ) -> Result<Value, YaqlError> {
        if name == "switch" {
            let mut all: Vec<&Arg> = Vec::new();
            if recv.is_some() {
                return Err(YaqlError::func(name, "is not a method"));
            }
            all.extend(args.iter());
            for arg in all {
                let Arg::Pair(cond, value) = arg else {
                    return Err(YaqlError::func(
                        name,
                        "arguments must be 'condition => value'",
                    ));
                };
                if truthy(&*self.eval(cond, scope)?) {
                    return self.owned(value, scope);
                }
            }
            return Ok(Value::Null);
        }
        // The collection is the receiver, or the first positional argument.
        let mut rest: Vec<&'a Node> = Vec::new();
        for arg in args {
            match arg {
                Arg::Pos(n) => rest.push(n),
                Arg::Pair(..) => return Err(YaqlError::func(name, "takes no keyword arguments")),
            }
        }
        let owned_first;
        let coll: &Value = match recv {
            Some(v) => v,
            None => {
                if rest.is_empty() {
                    return Err(YaqlError::func(name, "missing the collection argument"));
                }
                owned_first = self.owned(rest.remove(0), scope)?;
                &owned_first
            }
        };
        let items = functions::iterate(name, coll)?;
        let lambda = rest.first().copied();
        if rest.len() > 2 || (rest.len() > 1 && !matches!(name, "groupBy" | "toDict")) {
            return Err(YaqlError::func(name, "too many arguments"));
        }
        let need = |l: Option<&'a Node>| {
            l.ok_or_else(|| YaqlError::func(name, "missing the lambda argument"))
        };
        match name {
            "select" => {
                let body = need(lambda)?;
                Ok(Value::Array(
                    items
                        .iter()
                        .map(|i| self.apply(body, scope, i))
                        .collect::<Result<_, _>>()?,
                ))
            }
            "selectMany" => {
                let body = need(lambda)?;
                let mut out = Vec::new();
                for i in items.iter() {
                    match self.apply(body, scope, i)? {
                        Value::Array(a) => out.extend(a),
                        other => out.push(other),
                    }
                }
                Ok(Value::Array(out))
            }
            "where" | "filter" => {
                let body = need(lambda)?;
                let mut out = Vec::new();
                for i in items.iter() {
                    if truthy(&self.apply(body, scope, i)?) {
                        out.push(i.clone());
                    }
                }
                Ok(Value::Array(out))
            }
            "any" | "all" => {
                let want_all = name == "all";
                for i in items.iter() {
                    let t = match lambda {
                        Some(body) => truthy(&self.apply(body, scope, i)?),
                        // Without a predicate, `any()` asks for any item at all, `all()` for
                        // truthy items.
                        None => !want_all || truthy(i),
                    };
                    if t != want_all {
                        return Ok(Value::Bool(!want_all));
                    }
                }
                Ok(Value::Bool(want_all))
            }
            "takeWhile" | "skipWhile" => {
                let body = need(lambda)?;
                let mut cut = items.len();
                for (n, i) in items.iter().enumerate() {
                    if !truthy(&self.apply(body, scope, i)?) {
                        cut = n;
                        break;
                    }
                }
                let part = if name == "takeWhile" {
                    &items[..cut]
                } else {
                    &items[cut..]
                };
                Ok(Value::Array(part.to_vec()))
            }
            "indexWhere" => {
                let body = need(lambda)?;
                for (n, i) in items.iter().enumerate() {
                    if truthy(&self.apply(body, scope, i)?) {
                        return Ok(Value::from(n));
                    }
                }
                Ok(Value::from(-1))
            }
            "orderBy" | "orderByDescending" => {
                let mut keyed = Vec::with_capacity(items.len());
                for i in items.iter() {
                    let k = match lambda {
                        Some(body) => self.apply(body, scope, i)?,
                        None => i.clone(),
                    };
                    keyed.push((k, i.clone()));
                }
                let mut error = None;
                keyed.sort_by(|a, b| match compare(&a.0, &b.0) {
                    Some(o) => o,
                    None => {
                        error.get_or_insert_with(|| {
                            YaqlError::func(
                                name,
                                format!(
                                    "cannot compare {} with {}",
                                    type_name(&a.0),
                                    type_name(&b.0)
                                ),
                            )
                        });
                        std::cmp::Ordering::Equal
                    }
                });
                if let Some(e) = error {
                    return Err(e);
                }
                if name == "orderByDescending" {
                    keyed.reverse();
                }
                Ok(Value::Array(keyed.into_iter().map(|(_, v)| v).collect()))
            }
            "toDict" => {
                // toDict(keySelector, valueSelector?): keys as strings (JSON objects).
                let key_body = need(lambda)?;
                let value_body = rest.get(1).copied();
                let mut map = Map::new();
                for i in items.iter() {
                    let k = functions::key_string(&self.apply(key_body, scope, i)?);
                    let v = match value_body {
                        Some(b) => self.apply(b, scope, i)?,
                        None => i.clone(),
                    };
                    map.insert(k, v);
                }
                Ok(Value::Object(map))
            }
            _ => {
                // groupBy(keySelector, valueSelector?): [[key, [values...]], ...] in first-seen order.
                let key_body = need(lambda)?;
                let value_body = rest.get(1).copied();
                let mut groups: Vec<(Value, Vec<Value>)> = Vec::new();
                for i in items.iter() {
                    let k = self.apply(key_body, scope, i)?;
                    let v = match value_body {
                        Some(b) => self.apply(b, scope, i)?,
                        None => i.clone(),
                    };
                    match groups.iter_mut().find(|(gk, _)| equals(gk, &k)) {
                        Some((_, vs)) => vs.push(v),
                        None => groups.push((k, vec![v])),
                    }
                }
                Ok(Value::Array(
                    groups
                        .into_iter()
                        .map(|(k, vs)| Value::Array(vec![k, Value::Array(vs)]))
                        .collect(),
                ))
            }
        }
    }
}

/// `obj.name`: a dict's key (missing is an error), or the key of every dict in a list.
fn attribute<'a>(obj: Cow<'a, Value>, name: &str) -> Res<'a> {
    match obj {
        Cow::Borrowed(Value::Object(m)) => match m.get(name) {
            Some(v) => Ok(Cow::Borrowed(v)),
            None => Err(missing_key(name)),
        },
        Cow::Owned(Value::Object(mut m)) => match m.remove(name) {
            Some(v) => Ok(Cow::Owned(v)),
            None => Err(missing_key(name)),
        },
        Cow::Borrowed(Value::Array(items)) => Ok(Cow::Owned(Value::Array(
            items
                .iter()
                .map(|i| member_of(i, name))
                .collect::<Result<_, _>>()?,
        ))),
        Cow::Owned(Value::Array(items)) => Ok(Cow::Owned(Value::Array(
            items
                .iter()
                .map(|i| member_of(i, name))
                .collect::<Result<_, _>>()?,
        ))),
        other => Err(YaqlError::Lookup {
            message: format!("no attribute \"{name}\" on {}", type_name(&other)),
        }),
    }
}

fn member_of(item: &Value, name: &str) -> Result<Value, YaqlError> {
    match attribute(Cow::Borrowed(item), name)? {
        Cow::Borrowed(v) => Ok(v.clone()),
        Cow::Owned(v) => Ok(v),
    }
}

fn missing_key(name: &str) -> YaqlError {
    YaqlError::Lookup {
        message: format!("key \"{name}\" not found"),
    }
}

/// `obj[idx]` / `obj[key, default]`.
fn index<'a>(obj: Cow<'a, Value>, idx: &Value, default: Option<Value>) -> Res<'a> {
    match (&*obj, idx) {
        (Value::Array(items), Value::Number(n)) if n.is_i64() || n.is_u64() => {
            let len = items.len() as i64;
            let raw = n.as_i64().unwrap_or(i64::MAX);
            let i = if raw < 0 { raw + len } else { raw };
            if i < 0 || i >= len {
                return match default {
                    Some(d) => Ok(Cow::Owned(d)),
                    None => Err(YaqlError::Lookup {
                        message: format!("index {raw} out of range (length {len})"),
                    }),
                };
            }
            let i = i as usize;
            Ok(match obj {
                Cow::Borrowed(Value::Array(items)) => Cow::Borrowed(&items[i]),
                Cow::Owned(Value::Array(mut items)) => Cow::Owned(items.swap_remove(i)),
                _ => unreachable!("matched an array above"),
            })
        }
        (Value::Object(m), key) => {
            let key = functions::key_string(key);
            if !m.contains_key(&key) {
                return match default {
                    Some(d) => Ok(Cow::Owned(d)),
                    None => Err(missing_key(&key)),
                };
            }
            Ok(match obj {
                Cow::Borrowed(Value::Object(m)) => Cow::Borrowed(&m[&key]),
                Cow::Owned(Value::Object(mut m)) => {
                    Cow::Owned(m.remove(&key).unwrap_or(Value::Null))
                }
                _ => unreachable!("matched an object above"),
            })
        }
        (o, i) => Err(YaqlError::op(
            "[]",
            format!("cannot index {} with {}", type_name(o), type_name(i)),
        )),
    }
}

fn unary(op: UnOp, v: &Value) -> Result<Value, YaqlError> {
    match op {
        UnOp::Not => Ok(Value::Bool(!truthy(v))),
        UnOp::Neg | UnOp::Plus => {
            let sym = if op == UnOp::Neg { "-" } else { "+" };
            match num(v) {
                Some(Num::I(i)) if op == UnOp::Neg => i
                    .checked_neg()
                    .map(Value::from)
                    .ok_or_else(|| YaqlError::op(sym, "integer overflow")),
                Some(Num::F(f)) if op == UnOp::Neg => Ok(functions::float(-f)),
                Some(_) => Ok(v.clone()),
                None => Err(YaqlError::op(
                    sym,
                    format!("expects a number, got {}", type_name(v)),
                )),
            }
        }
    }
}

/// The non-short-circuit binary operators.
fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, YaqlError> {
    let sym = op.symbol();
    let bad = || {
        YaqlError::op(
            sym,
            format!("unsupported operands {} and {}", type_name(l), type_name(r)),
        )
    };
    match op {
        BinOp::Eq => Ok(Value::Bool(equals(l, r))),
        BinOp::Ne => Ok(Value::Bool(!equals(l, r))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = compare(l, r).ok_or_else(bad)?;
            Ok(Value::Bool(match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        BinOp::In => match r {
            Value::Array(items) => Ok(Value::Bool(items.iter().any(|i| equals(i, l)))),
            Value::String(s) => match l {
                Value::String(sub) => Ok(Value::Bool(s.contains(sub.as_str()))),
                _ => Err(bad()),
            },
            Value::Object(m) => Ok(Value::Bool(m.contains_key(&functions::key_string(l)))),
            _ => Err(bad()),
        },
        BinOp::Match | BinOp::NotMatch => {
            let (Value::String(s), Some(re)) = (l, functions::regex_of(r)?) else {
                return Err(bad());
            };
            let found = re
                .is_match(s)
                .map_err(|e| YaqlError::op(sym, e.to_string()))?;
            Ok(Value::Bool(found == (op == BinOp::Match)))
        }
        BinOp::Add => match (l, r) {
            (Value::String(a), Value::String(b)) => Ok(Value::String(format!("{a}{b}"))),
            (Value::Array(a), Value::Array(b)) => {
                Ok(Value::Array(a.iter().chain(b).cloned().collect()))
            }
            (Value::Object(a), Value::Object(b)) => {
                let mut m = a.clone();
                m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(Value::Object(m))
            }
            _ => arith(op, l, r).ok_or_else(bad)?,
        },
        BinOp::Mul => match (l, r) {
            (Value::String(s), Value::Number(_)) | (Value::Number(_), Value::String(s)) => {
                let n = match (num(l), num(r)) {
                    (Some(Num::I(n)), _) | (_, Some(Num::I(n))) => n,
                    _ => return Err(bad()),
                };
                let n = n.max(0) as usize;
                if s.len().saturating_mul(n) > 100_000_000 {
                    return Err(YaqlError::op(sym, "result too large"));
                }
                Ok(Value::String(s.repeat(n)))
            }
            _ => arith(op, l, r).ok_or_else(bad)?,
        },
        _ => arith(op, l, r).ok_or_else(bad)?,
    }
}

/// Numeric `+ - * / mod` with Python's rules (`int / int` floors, `mod` takes the divisor's
/// sign); `None` when an operand is not a number.
fn arith(op: BinOp, l: &Value, r: &Value) -> Option<Result<Value, YaqlError>> {
    let sym = op.symbol();
    let (a, b) = (num(l)?, num(r)?);
    let overflow = || YaqlError::op(sym, "integer overflow");
    let zero = || YaqlError::op(sym, "division by zero");
    Some(match (a, b) {
        (Num::I(x), Num::I(y)) => match op {
            BinOp::Add => x.checked_add(y).map(Value::from).ok_or_else(overflow),
            BinOp::Sub => x.checked_sub(y).map(Value::from).ok_or_else(overflow),
            BinOp::Mul => x.checked_mul(y).map(Value::from).ok_or_else(overflow),
            BinOp::Div => {
                if y == 0 {
                    Err(zero())
                } else {
                    x.checked_div_euclid(y)
                        .ok_or_else(overflow)
                        .map(|_| Value::from(floor_div(x, y)))
                }
            }
            _ => {
                if y == 0 {
                    Err(zero())
                } else {
                    {
                        let r = x.wrapping_rem(y);
                        Ok(Value::from(if r != 0 && (r < 0) != (y < 0) {
                            r + y
                        } else {
                            r
                        }))
                    }
                }
            }
        },
        (a, b) => {
            let (x, y) = (a.as_f64(), b.as_f64());
            match op {
                BinOp::Add => Ok(functions::float(x + y)),
                BinOp::Sub => Ok(functions::float(x - y)),
                BinOp::Mul => Ok(functions::float(x * y)),
                BinOp::Div => {
                    if y == 0.0 {
                        Err(zero())
                    } else {
                        Ok(functions::float(x / y))
                    }
                }
                _ => {
                    if y == 0.0 {
                        Err(zero())
                    } else {
                        let m = x % y;
                        Ok(functions::float(if m != 0.0 && (m < 0.0) != (y < 0.0) {
                            m + y
                        } else {
                            m
                        }))
                    }
                }
            }
        }
    })
}

/// Python's `//` on integers (rounds towards negative infinity).
fn floor_div(x: i64, y: i64) -> i64 {
    let q = x / y;
    if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}
