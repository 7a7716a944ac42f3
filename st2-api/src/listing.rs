//! StackStorm's list and get conventions, shared by every resource: `limit`/`offset` paging with
//! `X-Total-Count`, `include_attributes`/`exclude_attributes` (comma lists, dotted paths keep
//! their parents as objects), `sort_asc`/`sort_desc`, equality filters named per resource, and
//! ref-or-id lookups answering 404 with a `faultstring`.
//!
//! Handlers describe a resource with a [`ListSpec`] and call [`list`]; they never parse paging
//! or projection themselves.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use st2_core::model::Document;
use st2_core::store::{repo, Query, Store};

use crate::error::ApiError;

/// Raw query parameters of a request (`?a=1&b=x,y`), as axum's `Query<HashMap<..>>` gives them.
pub type RawParams = HashMap<String, String>;

/// How one resource is listed.
pub struct ListSpec<T> {
    /// Query parameter → document field (dotted) for equality filters, e.g. `("action", "action.ref")`.
    pub filters: &'static [(&'static str, &'static str)],
    /// Default sort field and whether descending.
    pub sort: (&'static str, bool),
    /// Page size when `limit` is absent (`None`: everything).
    pub default_limit: Option<u64>,
    /// The document as the API shows it (secrets masked, internal fields dropped).
    pub view: fn(T) -> Value,
}

/// The paging and projection part of a list request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paging {
    /// Page size; `None`: all.
    pub limit: Option<u64>,
    /// Documents skipped.
    pub offset: u64,
    /// Only these (dotted) fields, plus `id`.
    pub include: Vec<String>,
    /// All but these (dotted) fields.
    pub exclude: Vec<String>,
    /// Sort direction asked for: `Some(true)` descending, `Some(false)` ascending.
    pub descending: Option<bool>,
}

/// Splits a comma list (`a,b,,c` → `[a, b, c]`).
pub fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a Python-style boolean (`True`, `true`, `1`, `yes`); `None` when absent or unreadable.
pub fn bool_param(p: &RawParams, name: &str) -> Option<bool> {
    p.get(name)
        .and_then(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        })
}

impl Paging {
    /// Reads `limit`, `offset`, `include_attributes`, `exclude_attributes`, `sort_desc`,
    /// `sort_asc`. A negative `limit` (StackStorm's `-1`) or `0` means no limit; an unreadable
    /// number is a 400.
    pub fn from_params(p: &RawParams, default_limit: Option<u64>) -> Result<Self, ApiError> {
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            p.get(name)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!("Invalid value for \"{name}\": \"{v}\" is not an integer"),
                        )
                    })
                })
                .transpose()
        };
        let limit = match number("limit")? {
            Some(l) if l > 0 => Some(l as u64),
            Some(_) => None,
            None => default_limit,
        };
        let offset = number("offset")?.filter(|o| *o > 0).unwrap_or(0) as u64;
        let descending = match (bool_param(p, "sort_desc"), bool_param(p, "sort_asc")) {
            (Some(true), _) => Some(true),
            (_, Some(true)) => Some(false),
            (Some(false), _) => Some(false),
            _ => None,
        };
        Ok(Self {
            limit,
            offset,
            include: p
                .get("include_attributes")
                .map(|s| comma_list(s))
                .unwrap_or_default(),
            exclude: p
                .get("exclude_attributes")
                .map(|s| comma_list(s))
                .unwrap_or_default(),
            descending,
        })
    }

    /// Applies include/exclude to one document.
    pub fn project(&self, v: Value) -> Value {
        project(v, &self.include, &self.exclude)
    }
}

/// Keeps only `include` (when non-empty; `id` is always kept) and drops `exclude`, both dotted
/// paths. Parents of an included dotted path stay objects (`action.ref` → `{"action":{"ref":..}}`).
pub fn project(v: Value, include: &[String], exclude: &[String]) -> Value {
    let Value::Object(obj) = v else {
        return v;
    };
    let mut out = if include.is_empty() {
        obj
    } else {
        let mut kept = Map::new();
        if let Some(id) = obj.get("id") {
            kept.insert("id".into(), id.clone());
        }
        for path in include {
            copy_path(&obj, &mut kept, path);
        }
        kept
    };
    for path in exclude {
        remove_path(&mut out, path);
    }
    Value::Object(out)
}

fn copy_path(src: &Map<String, Value>, dst: &mut Map<String, Value>, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(v) = src.get(head) else {
        return;
    };
    match (rest, v) {
        (Some(rest), Value::Object(inner)) => {
            let slot = dst
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(slot) = slot {
                copy_path(inner, slot, rest);
            }
        }
        (Some(_), _) => {}
        (None, v) => {
            dst.insert(head.to_string(), v.clone());
        }
    }
}

fn remove_path(obj: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = obj.get_mut(head) {
                remove_path(inner, rest);
            }
        }
        None => {
            obj.remove(path);
        }
    }
}

/// A JSON body with `X-Total-Count`.
pub fn with_total(body: Value, total: u64) -> Response {
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        resp.headers_mut().insert("X-Total-Count", v);
    }
    resp
}

/// The equality filters of `spec` present in `p`, added to `q`. `null` (as `parent=null`) matches
/// a missing or null field; `True`/`False` match booleans.
pub fn filtered(mut q: Query, p: &RawParams, filters: &[(&str, &str)]) -> Query {
    for (param, field) in filters {
        if let Some(v) = p.get(*param) {
            let value = match v.as_str() {
                "null" | "None" => Value::Null,
                "True" | "true" if *param == "enabled" => Value::Bool(true),
                "False" | "false" if *param == "enabled" => Value::Bool(false),
                s => Value::String(s.to_string()),
            };
            q = q.eq(*field, value);
        }
    }
    q
}

/// Lists documents of `T`: `q` plus the spec's filters, sorted, paged, projected, viewed.
pub async fn list<T: Document>(
    store: &dyn Store,
    p: &RawParams,
    q: Query,
    spec: &ListSpec<T>,
) -> Result<Response, ApiError> {
    let (items, total) = list_value(store, p, q, spec).await?;
    Ok(with_total(items, total))
}

/// A JSON body (already serialised) with `X-Total-Count`.
pub fn bytes_with_total(body: axum::body::Bytes, total: u64) -> Response {
    let mut resp = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        resp.headers_mut().insert("X-Total-Count", v);
    }
    resp
}

/// [`list`] of registration-time content (actions, runner types, ...), answered from the
/// catalog's cache of serialised listings when the pipeline runs in this process; `key` names
/// the request (resource and query string).
pub async fn cached_list<T: Document>(
    state: &crate::AppState,
    key: &str,
    p: &RawParams,
    spec: &ListSpec<T>,
) -> Result<Response, ApiError> {
    let Some(ctx) = &state.services else {
        return list(&*state.store, p, Query::all(), spec).await;
    };
    if let Some(hit) = ctx.catalog.listing(key) {
        return Ok(bytes_with_total(hit.0.clone(), hit.1));
    }
    let started = ctx.catalog.generation();
    let (items, total) = list_value(&*state.store, p, Query::all(), spec).await?;
    let body = axum::body::Bytes::from(serde_json::to_vec(&items).unwrap_or_default());
    ctx.catalog.put_listing(key, started, body.clone(), total);
    Ok(bytes_with_total(body, total))
}

/// The items and total of [`list`].
pub async fn list_value<T: Document>(
    store: &dyn Store,
    p: &RawParams,
    q: Query,
    spec: &ListSpec<T>,
) -> Result<(Value, u64), ApiError> {
    let paging = Paging::from_params(p, spec.default_limit)?;
    let (field, desc) = spec.sort;
    let q = filtered(q, p, spec.filters).sort(field, paging.descending.unwrap_or(desc));
    let docs = repo::<T>(store);
    let total = docs.count(&q).await?;
    let items: Vec<Value> = docs
        .find(&q.page(paging.offset, paging.limit))
        .await?
        .into_iter()
        .map(|d| paging.project((spec.view)(d)))
        .collect();
    Ok((Value::Array(items), total))
}

/// Like [`list`], keeping only the documents for which `keep` holds (checked here,
/// after the store's equality filters), then paging and projecting. `X-Total-Count` counts the
/// kept documents.
pub async fn list_matching<T: Document>(
    store: &dyn Store,
    p: &RawParams,
    q: Query,
    spec: &ListSpec<T>,
    keep: impl Fn(&T) -> bool,
) -> Result<Response, ApiError> {
    let paging = Paging::from_params(p, spec.default_limit)?;
    let (field, desc) = spec.sort;
    let q = filtered(q, p, spec.filters).sort(field, paging.descending.unwrap_or(desc));
    let kept: Vec<T> = repo::<T>(store)
        .find(&q)
        .await?
        .into_iter()
        .filter(|d| keep(d))
        .collect();
    let total = kept.len() as u64;
    let items = kept
        .into_iter()
        .skip(usize::try_from(paging.offset).unwrap_or(usize::MAX))
        .take(paging.limit.map_or(usize::MAX, |l| l as usize))
        .map(|d| paging.project((spec.view)(d)))
        .collect();
    Ok(with_total(Value::Array(items), total))
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// True when the ISO-8601 time `t` is after `gt` and before `lt` (each bound optional; an
/// unreadable time is outside any window).
pub fn within(t: &str, gt: Option<&str>, lt: Option<&str>) -> bool {
    let t = parse_time(t);
    gt.is_none_or(|g| t.is_some() && t > parse_time(g))
        && lt.is_none_or(|l| t.is_some() && t < parse_time(l))
}

/// 404 `{what} with ref or id "{key}" not found` (the shape of StackStorm's message).
pub fn not_found(what: &str, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{what} with ref or id \"{key}\" not found"),
    )
}

/// Reads one document by ref or id, or 404 naming `what`.
pub async fn get_by_ref_or_id<T: Document>(
    store: &dyn Store,
    what: &str,
    key: &str,
) -> Result<T, ApiError> {
    repo::<T>(store)
        .get_by_ref_or_id(key)
        .await?
        .ok_or_else(|| not_found(what, key))
}

/// Reads one document by id, or 404 naming `what`.
pub async fn get_by_id<T: Document>(
    store: &dyn Store,
    what: &str,
    id: &str,
) -> Result<T, ApiError> {
    repo::<T>(store)
        .get(id)
        .await?
        .ok_or_else(|| not_found(what, id))
}

/// A document serialised for the API (serde never fails on the model types).
pub fn to_json<T: serde::Serialize>(doc: T) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> RawParams {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging_reads_stackstorm_params() {
        let p = Paging::from_params(
            &params(&[
                ("limit", "50"),
                ("offset", "10"),
                ("include_attributes", "id,action.ref,status"),
                ("sort_desc", "True"),
            ]),
            None,
        )
        .expect("paging");
        assert_eq!(p.limit, Some(50));
        assert_eq!(p.offset, 10);
        assert_eq!(p.include, vec!["id", "action.ref", "status"]);
        assert_eq!(p.descending, Some(true));
        let all = Paging::from_params(&params(&[("limit", "-1")]), Some(100)).expect("paging");
        assert_eq!(all.limit, None);
        let default = Paging::from_params(&params(&[]), Some(100)).expect("paging");
        assert_eq!(default.limit, Some(100));
        let bad = Paging::from_params(&params(&[("limit", "x")]), None).expect_err("bad");
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.message.contains("limit"));
    }

    #[test]
    fn projection_keeps_dotted_parents_and_id() {
        let doc = json!({"id": "1", "status": "ok", "action": {"ref": "core.local", "name": "local"},
                         "result": {"stdout": "x"}});
        let inc = project(doc.clone(), &["action.ref".into(), "status".into()], &[]);
        assert_eq!(
            inc,
            json!({"id": "1", "action": {"ref": "core.local"}, "status": "ok"})
        );
        let exc = project(doc, &[], &["result".into(), "action.name".into()]);
        assert_eq!(
            exc,
            json!({"id": "1", "status": "ok", "action": {"ref": "core.local"}})
        );
    }

    #[test]
    fn filters_read_null_and_booleans() {
        let q = filtered(
            Query::all(),
            &params(&[("parent", "null"), ("enabled", "True"), ("pack", "core")]),
            &[
                ("parent", "parent"),
                ("enabled", "enabled"),
                ("pack", "pack"),
            ],
        );
        assert!(q.matches(&json!({"enabled": true, "pack": "core"})));
        assert!(!q.matches(&json!({"enabled": true, "pack": "core", "parent": "x"})));
        assert!(!q.matches(&json!({"enabled": false, "pack": "core"})));
    }
}
