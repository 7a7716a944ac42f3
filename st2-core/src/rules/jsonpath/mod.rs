//! Criteria keys as `jsonpath_rw` 1.4 parses and evaluates them (what StackStorm's
//! `PayloadLookup` uses): `trigger.body.items[0].x`, `trigger.headers['X-Y']`,
//! `trigger.headers.X-Y` (identifiers may contain `-`), `[*]`, `[1:]`, `[-1]`, `*`, `..`,
//! `a,b`, `$`, `` `this` ``, `` `parent` ``, `|`, `where`, with its precedence (`..` < `.` < `|`
//! < `&` < `where`, brackets tightest) and its quirks: a field of a non-dict is no match, an
//! index on a dict or past the start of a list raises, `[*]` wraps a dict, int or string in a
//! list, `null[0]` raises.
//!
//! A path is parsed once ([`JsonPath::parse`]) and evaluated against `{<prefix>: value}`
//! without building that object; simple chains of fields and indexes take an allocation-free
//! fast path. Errors carry Python's exception text.

use std::borrow::Cow;
use std::rc::Rc;

use serde_json::Value as Json;

use crate::pyfmt::type_name;

mod syntax;
#[cfg(test)]
mod tests;

/// A path could not be parsed or evaluated; the text is what `jsonpath_rw` would raise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The lexer or parser rejected the path.
    #[error("{0}")]
    Syntax(String),
    /// A `TypeError` during evaluation (`object of type 'NoneType' has no len()`).
    #[error("{0}")]
    Type(String),
    /// An `IndexError` (`list index out of range`).
    #[error("{0}")]
    Index(String),
    /// A `KeyError` (an integer index on a dict); the text is the key.
    #[error("{0}")]
    Key(String),
    /// `&` (intersection) is not implemented by `jsonpath_rw`.
    #[error("NotImplementedError")]
    NotImplemented,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Root,
    This,
    Parent,
    /// Field names; `*` among them means every key.
    Fields(Vec<String>),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Child(Box<Expr>, Box<Expr>),
    Descendants(Box<Expr>, Box<Expr>),
    Where(Box<Expr>, Box<Expr>),
    Union(Box<Expr>, Box<Expr>),
    Intersect(Box<Expr>, Box<Expr>),
}

/// One step of a simple path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
}

/// A compiled `jsonpath_rw` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    expr: Expr,
    /// Set when the path is a chain of single fields and indexes starting with a field.
    simple: Option<Vec<Step>>,
}

impl JsonPath {
    /// Parses `source` (`jsonpath_rw.parse`).
    pub fn parse(source: &str) -> Result<JsonPath, JsonPathError> {
        let expr = syntax::parse(source)?;
        let simple = simple_steps(&expr);
        Ok(JsonPath {
            source: source.to_string(),
            expr,
            simple,
        })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first value the path finds in `{prefix: value}` (StackStorm's "first match"),
    /// `None` when nothing matches.
    pub fn first<'a>(
        &self,
        prefix: &'a str,
        value: &'a Json,
    ) -> Result<Option<Cow<'a, Json>>, JsonPathError> {
        if let Some(steps) = &self.simple {
            let mut cur = Val::Ctx(prefix, value);
            for step in steps {
                let next = match step {
                    Step::Field(name) => field(&cur, name),
                    Step::Index(i) => index(&cur, *i)?,
                };
                match next {
                    Some(v) => cur = v,
                    None => return Ok(None),
                }
            }
            return Ok(Some(cur.into_json()));
        }
        Ok(self.find(prefix, value)?.into_iter().next())
    }

    /// Every value the path finds in `{prefix: value}`, in `jsonpath_rw` order.
    pub fn find<'a>(
        &self,
        prefix: &'a str,
        value: &'a Json,
    ) -> Result<Vec<Cow<'a, Json>>, JsonPathError> {
        let root = Rc::new(Datum {
            val: Val::Ctx(prefix, value),
            parent: None,
        });
        let found = find(&self.expr, &root, &root)?;
        Ok(found.iter().map(|d| d.val.clone().into_json()).collect())
    }
}

/// A simple path's steps, when the expression is one.
fn simple_steps(expr: &Expr) -> Option<Vec<Step>> {
    fn flatten(expr: &Expr, out: &mut Vec<Step>) -> bool {
        match expr {
            Expr::Child(l, r) => flatten(l, out) && flatten(r, out),
            Expr::Fields(names) if names.len() == 1 && names[0] != "*" => {
                out.push(Step::Field(names[0].clone()));
                true
            }
            Expr::Index(i) => {
                out.push(Step::Index(*i));
                true
            }
            _ => false,
        }
    }
    let mut steps = Vec::new();
    (flatten(expr, &mut steps) && matches!(steps.first(), Some(Step::Field(_)))).then_some(steps)
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A value reached by a path.
#[derive(Debug, Clone)]
enum Val<'a> {
    /// The context `{prefix: value}`.
    Ctx(&'a str, &'a Json),
    /// A value inside the payload.
    Ref(&'a Json),
    /// A value made during evaluation (a character of a string).
    Own(Rc<Json>),
    /// Python `None` from `` `parent` `` of the context.
    Nothing,
}

impl<'a> Val<'a> {
    fn into_json(self) -> Cow<'a, Json> {
        match self {
            Val::Ctx(prefix, value) => {
                let mut map = serde_json::Map::new();
                map.insert(prefix.to_string(), value.clone());
                Cow::Owned(Json::Object(map))
            }
            Val::Ref(v) => Cow::Borrowed(v),
            Val::Own(v) => Cow::Owned((*v).clone()),
            Val::Nothing => Cow::Owned(Json::Null),
        }
    }

    /// A child value: borrowed when this one is, copied otherwise.
    fn child(&self, get: impl FnOnce(&Json) -> Option<&Json>) -> Option<Val<'a>> {
        match self {
            Val::Ref(v) => get(v).map(Val::Ref),
            Val::Own(v) => get(v).map(|c| Val::Own(Rc::new(c.clone()))),
            Val::Ctx(..) | Val::Nothing => None,
        }
    }

    fn json(&self) -> Option<&Json> {
        match self {
            Val::Ref(v) => Some(v),
            Val::Own(v) => Some(v),
            Val::Ctx(..) | Val::Nothing => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Val::Ctx(..) => "dict",
            Val::Nothing => "NoneType",
            Val::Ref(v) => type_name(v),
            Val::Own(v) => type_name(v),
        }
    }
}

/// `Fields.get_field_datum`: a key of a dict; anything else has no fields.
fn field<'a>(val: &Val<'a>, name: &str) -> Option<Val<'a>> {
    match val {
        Val::Ctx(prefix, value) => (*prefix == name).then_some(Val::Ref(value)),
        other => other.child(|j| j.as_object().and_then(|m| m.get(name))),
    }
}

/// `Fields.reified_fields` for `*`: the values of a dict, nothing for anything else.
fn all_fields<'a>(val: &Val<'a>) -> Vec<Val<'a>> {
    match val {
        Val::Ctx(_, value) => vec![Val::Ref(value)],
        Val::Ref(v) => match *v {
            Json::Object(map) => map.values().map(Val::Ref).collect(),
            _ => Vec::new(),
        },
        Val::Own(v) => match &**v {
            Json::Object(map) => map.values().map(|c| Val::Own(Rc::new(c.clone()))).collect(),
            _ => Vec::new(),
        },
        Val::Nothing => Vec::new(),
    }
}

/// The items of a list, nothing for anything else.
fn list_items<'a>(val: &Val<'a>) -> Vec<Val<'a>> {
    match val {
        Val::Ref(v) => match *v {
            Json::Array(items) => items.iter().map(Val::Ref).collect(),
            _ => Vec::new(),
        },
        Val::Own(v) => match &**v {
            Json::Array(items) => items.iter().map(|c| Val::Own(Rc::new(c.clone()))).collect(),
            _ => Vec::new(),
        },
        Val::Ctx(..) | Val::Nothing => Vec::new(),
    }
}

fn no_len(val: &Val<'_>) -> JsonPathError {
    JsonPathError::Type(format!("object of type '{}' has no len()", val.type_name()))
}

/// `Index.find`: `value[i]` when `len(value) > i` (negative indexes count from the end and
/// raise past the start; an integer on a dict is a `KeyError`).
fn index<'a>(val: &Val<'a>, i: i64) -> Result<Option<Val<'a>>, JsonPathError> {
    let len = match val {
        Val::Ctx(..) => 1,
        Val::Nothing => return Err(no_len(val)),
        other => match other.json() {
            Some(Json::Array(a)) => a.len(),
            Some(Json::Object(m)) => m.len(),
            Some(Json::String(s)) => s.chars().count(),
            _ => return Err(no_len(val)),
        },
    };
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    if len <= i {
        return Ok(None);
    }
    let pos = if i < 0 { i + len } else { i };
    match val.json() {
        Some(Json::Array(_)) => {
            if pos < 0 {
                return Err(JsonPathError::Index("list index out of range".into()));
            }
            let pos = usize::try_from(pos).unwrap_or(usize::MAX);
            Ok(val.child(|j| j.as_array().and_then(|a| a.get(pos))))
        }
        Some(Json::String(s)) => {
            if pos < 0 {
                return Err(JsonPathError::Index("string index out of range".into()));
            }
            let pos = usize::try_from(pos).unwrap_or(usize::MAX);
            Ok(s.chars()
                .nth(pos)
                .map(|c| Val::Own(Rc::new(Json::String(c.to_string())))))
        }
        _ => Err(JsonPathError::Key(i.to_string())),
    }
}

/// Python's `range(0, len)[start:end]`.
fn slice_range(len: usize, start: Option<i64>, end: Option<i64>) -> std::ops::Range<usize> {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
    let s = start.map_or(0, clamp);
    let e = end.map_or(n, clamp);
    let s = usize::try_from(s).unwrap_or(0);
    let e = usize::try_from(e).unwrap_or(0);
    if s >= e {
        0..0
    } else {
        s..e
    }
}

/// `Slice.find`: list items; a dict, int, bool or string is wrapped in a one-item list; `None`
/// and floats raise.
fn slice<'a>(
    val: &Val<'a>,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Vec<Val<'a>>, JsonPathError> {
    let wrap = |v: &Val<'a>| Ok(slice_range(1, start, end).map(|_| v.clone()).collect());
    match val {
        Val::Ctx(..) => wrap(val),
        Val::Nothing => Err(no_len(val)),
        other => match other.json() {
            Some(Json::Array(a)) => {
                let range = slice_range(a.len(), start, end);
                Ok(list_items(other)
                    .into_iter()
                    .skip(range.start)
                    .take(range.len())
                    .collect())
            }
            Some(Json::Object(_) | Json::String(_) | Json::Bool(_)) => wrap(val),
            Some(Json::Number(n)) if !n.is_f64() => wrap(val),
            _ => Err(no_len(val)),
        },
    }
}

#[derive(Debug)]
struct Datum<'a> {
    val: Val<'a>,
    parent: Option<Rc<Datum<'a>>>,
}

fn child_of<'a>(parent: &Rc<Datum<'a>>, val: Val<'a>) -> Rc<Datum<'a>> {
    Rc::new(Datum {
        val,
        parent: Some(Rc::clone(parent)),
    })
}

type Found<'a> = Result<Vec<Rc<Datum<'a>>>, JsonPathError>;

fn find<'a>(expr: &Expr, datum: &Rc<Datum<'a>>, root: &Rc<Datum<'a>>) -> Found<'a> {
    match expr {
        Expr::Root => Ok(vec![Rc::clone(root)]),
        Expr::This => Ok(vec![Rc::clone(datum)]),
        Expr::Parent => Ok(vec![datum.parent.clone().unwrap_or_else(|| {
            Rc::new(Datum {
                val: Val::Nothing,
                parent: None,
            })
        })]),
        Expr::Fields(names) => {
            let mut out = Vec::new();
            if names.iter().any(|n| n == "*") {
                for v in all_fields(&datum.val) {
                    out.push(child_of(datum, v));
                }
            } else {
                for name in names {
                    if let Some(v) = field(&datum.val, name) {
                        out.push(child_of(datum, v));
                    }
                }
            }
            Ok(out)
        }
        Expr::Index(i) => Ok(index(&datum.val, *i)?
            .map(|v| child_of(datum, v))
            .into_iter()
            .collect()),
        Expr::Slice(start, end) => Ok(slice(&datum.val, *start, *end)?
            .into_iter()
            .map(|v| child_of(datum, v))
            .collect()),
        Expr::Child(l, r) => {
            let mut out = Vec::new();
            for sub in find(l, datum, root)? {
                out.extend(find(r, &sub, root)?);
            }
            Ok(out)
        }
        Expr::Descendants(l, r) => {
            let mut out = Vec::new();
            for sub in find(l, datum, root)? {
                descend(r, &sub, root, &mut out)?;
            }
            Ok(out)
        }
        Expr::Where(l, r) => {
            let mut out = Vec::new();
            for sub in find(l, datum, root)? {
                if !find(r, &sub, root)?.is_empty() {
                    out.push(sub);
                }
            }
            Ok(out)
        }
        Expr::Union(l, r) => {
            let mut out = find(l, datum, root)?;
            out.extend(find(r, datum, root)?);
            Ok(out)
        }
        Expr::Intersect(..) => Err(JsonPathError::NotImplemented),
    }
}

/// `Descendants.match_recursively`: the right side's matches here, then in every list item
/// and dict value below.
fn descend<'a>(
    right: &Expr,
    datum: &Rc<Datum<'a>>,
    root: &Rc<Datum<'a>>,
    out: &mut Vec<Rc<Datum<'a>>>,
) -> Result<(), JsonPathError> {
    out.extend(find(right, datum, root)?);
    let children = match datum.val.json() {
        Some(Json::Array(_)) => list_items(&datum.val),
        _ => all_fields(&datum.val),
    };
    for child in children {
        descend(right, &child_of(datum, child), root, out)?;
    }
    Ok(())
}
