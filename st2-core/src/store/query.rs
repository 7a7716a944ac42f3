//! Backend-neutral queries: equality filters on (dotted) fields, one sort key, paging.

use serde_json::Value;

/// One condition on a document field. Field names may be dotted (`trigger.type`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The field equals the value (a missing field equals `null`).
    Eq(String, Value),
    /// The field equals one of the values.
    In(String, Vec<Value>),
    /// The string field starts with the prefix.
    Prefix(String, String),
}

/// Sort order on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    /// Field (dotted).
    pub field: String,
    /// Largest first.
    pub descending: bool,
}

/// A query: all filters AND-ed, then sorted (by `id` ascending when unset), then paged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// Sort order.
    pub sort: Option<Sort>,
    /// Maximum number of documents returned.
    pub limit: Option<u64>,
    /// Documents skipped first.
    pub offset: u64,
}

impl Query {
    /// Matches everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Adds `field == value`.
    pub fn eq(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filters.push(Filter::Eq(field.into(), value.into()));
        self
    }

    /// Adds `field in values`.
    pub fn is_in(mut self, field: impl Into<String>, values: Vec<Value>) -> Self {
        self.filters.push(Filter::In(field.into(), values));
        self
    }

    /// Adds `field starts with prefix`.
    pub fn prefix(mut self, field: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.filters
            .push(Filter::Prefix(field.into(), prefix.into()));
        self
    }

    /// Sorts by `field`.
    pub fn sort(mut self, field: impl Into<String>, descending: bool) -> Self {
        self.sort = Some(Sort {
            field: field.into(),
            descending,
        });
        self
    }

    /// Pages the result.
    pub fn page(mut self, offset: u64, limit: Option<u64>) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// True when `doc` satisfies every filter (used by backends that filter in memory).
    pub fn matches(&self, doc: &Value) -> bool {
        self.filters.iter().all(|f| match f {
            Filter::Eq(field, v) => lookup(doc, field).unwrap_or(&Value::Null) == v,
            Filter::In(field, vs) => {
                let got = lookup(doc, field).unwrap_or(&Value::Null);
                vs.iter().any(|v| v == got)
            }
            Filter::Prefix(field, p) => lookup(doc, field)
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(p.as_str())),
        })
    }
}

/// The value at a dotted path in a JSON document.
pub fn lookup<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(doc, |v, key| v.get(key))
}
