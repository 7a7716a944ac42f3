//! Turns validator errors into [`ContentError`]s: the field is the instance path as a JSON
//! pointer (for unknown and missing fields, the path of that field itself) and the reason a
//! sentence a pack author can act on.

use std::path::Path;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;

use super::embedded::BASE_URI;
use super::ContentError;

/// Finds a schema document by name: `""` is the document being validated against, other names
/// are file names (`action_param.json`) or full URIs.
pub(super) type Documents<'s> = dyn Fn(&str) -> Option<&'s Value> + 's;

/// Converts every error; `root` names the document the validator was compiled from.
pub(super) fn collect<'a, 's>(
    file: &Path,
    errors: impl Iterator<Item = ValidationError<'a>>,
    root: &str,
    docs: &Documents<'s>,
) -> Vec<ContentError> {
    let mut out = Vec::new();
    for e in errors {
        for (field, reason) in describe(&e, root, docs) {
            out.push(ContentError::new(file, field, reason));
        }
    }
    out
}

/// `Ok` when there are no errors; otherwise the errors without duplicates, most specific (deepest
/// field) first, in the validator's order among equals.
pub(super) fn finish(mut errors: Vec<ContentError>) -> Result<(), Vec<ContentError>> {
    if errors.is_empty() {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert((e.field.clone(), e.reason.clone())));
    errors.sort_by_key(|e| std::cmp::Reverse(depth(&e.field)));
    Err(errors)
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

/// Field(s) and reason(s) of one error. Most errors give one; "unknown fields" gives one per field.
fn describe(e: &ValidationError<'_>, root: &str, docs: &Documents<'_>) -> Vec<(String, String)> {
    let path = e.instance_path().as_str().to_string();
    let schema_path = e.evaluation_path().as_str();
    let one = |reason: String| vec![(path.clone(), reason)];
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let parent = schema_node(docs, root, parent_of(schema_path));
            unexpected
                .iter()
                .map(|name| (child(&path, name), unknown_field(name, parent)))
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![(
                child(&path, &name),
                format!("missing required field \"{name}\""),
            )]
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_string();
            let inner = describe(error.as_ref(), root, docs)
                .into_iter()
                .map(|(_, reason)| reason)
                .collect::<Vec<_>>()
                .join("; ");
            vec![(
                child(&path, &name),
                format!("invalid name \"{name}\": {inner}"),
            )]
        }
        ValidationErrorKind::Type { .. } => {
            // Name the expected types in the schema's own order, not the library's.
            let written: Vec<&str> = match schema_node(docs, root, schema_path) {
                Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if e.instance().is_null() && written.len() >= 5 && !written.contains(&"null") {
                // "any type but null": listing them all would obscure the point.
                one("expected a value, got null".to_string())
            } else if written.is_empty() {
                one(reason(e.kind(), e.instance()).unwrap_or_else(|| e.to_string()))
            } else {
                let expected = written.join(" or ");
                one(format!(
                    "expected {expected}, got {}",
                    describe_value(e.instance())
                ))
            }
        }
        ValidationErrorKind::Pattern { pattern } => {
            // The library reports its translated regex; show the one the schema author wrote.
            let node = schema_node(docs, root, parent_of(schema_path));
            let written = node.and_then(|n| n.get("pattern")).and_then(Value::as_str);
            let hint = node
                .and_then(|n| n.get("x-hint"))
                .and_then(Value::as_str)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            let pattern = written.unwrap_or(pattern.as_str());
            one(format!(
                "{} does not match {pattern}{hint}",
                show(e.instance())
            ))
        }
        kind => one(reason(kind, e.instance()).unwrap_or_else(|| e.to_string())),
    }
}

/// The reason for errors that need no schema lookup; `None` falls back to the library's text.
fn reason(kind: &ValidationErrorKind, instance: &Value) -> Option<String> {
    let shown = show(instance);
    Some(match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("expected {expected}, got {}", describe_value(instance))
        }
        ValidationErrorKind::Enum { options } => {
            let options = match &**options {
                Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
                other => show(other),
            };
            format!("{shown} is not one of {options}")
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("expected {}, got {shown}", show(expected_value))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("{shown} is less than the minimum {limit}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{shown} is greater than the maximum {limit}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("{shown} is not greater than {limit}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("{shown} is not less than {limit}")
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("{shown} is not a multiple of {multiple_of}")
        }
        ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".to_string(),
        ValidationErrorKind::MinLength { limit } => {
            format!("{shown} is shorter than {limit} characters")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{shown} is longer than {limit} characters")
        }
        ValidationErrorKind::MinItems { limit: 1 } => "must not be an empty list".to_string(),
        ValidationErrorKind::MinItems { limit } => {
            format!("expected at least {limit} items, got {}", len(instance))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("expected at most {limit} items, got {}", len(instance))
        }
        ValidationErrorKind::AdditionalItems { limit } => {
            format!("expected at most {limit} items, got {}", len(instance))
        }
        ValidationErrorKind::MinProperties { limit: 1 } => "must not be an empty map".to_string(),
        ValidationErrorKind::MinProperties { limit } => {
            format!("expected at least {limit} entries, got {}", len(instance))
        }
        ValidationErrorKind::MaxProperties { limit: 1 } => {
            format!("expected exactly one entry, got {}", len(instance))
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("expected at most {limit} entries, got {}", len(instance))
        }
        ValidationErrorKind::UniqueItems => match first_duplicate(instance) {
            Some(dup) => format!(
                "items must be unique, but {} appears more than once",
                show(dup)
            ),
            None => "items must be unique".to_string(),
        },
        ValidationErrorKind::Format { format } => format!("{shown} is not a valid {format}"),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            format!("{shown} does not match any of the allowed forms")
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            format!("{shown} matches more than one of the allowed forms")
        }
        ValidationErrorKind::Not { schema } => format!("{shown} must not match {schema}"),
        ValidationErrorKind::FalseSchema => "no value is allowed here".to_string(),
        ValidationErrorKind::Contains => "no item matches the expected schema".to_string(),
        ValidationErrorKind::UnevaluatedItems { unexpected } => {
            format!("unexpected items: {}", unexpected.join(", "))
        }
        _ => return None,
    })
}

/// Reason for an unknown field, listing what the enclosing schema allows.
fn unknown_field(name: &str, parent: Option<&Value>) -> String {
    let keys = |keyword: &str| -> Vec<&str> {
        parent
            .and_then(|p| p.get(keyword))
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let allowed = keys("properties");
    let patterns = keys("patternProperties");
    if allowed.is_empty() && !patterns.is_empty() {
        return format!(
            "invalid name \"{name}\": names must match {}",
            patterns.join(" or ")
        );
    }
    let mut reason = format!("unknown field \"{name}\"");
    if !allowed.is_empty() {
        reason.push_str(&format!(" (allowed: {}", allowed.join(", ")));
        if !patterns.is_empty() {
            reason.push_str(&format!(", or names matching {}", patterns.join(" or ")));
        }
        reason.push(')');
        if let Some(best) = closest(name, &allowed) {
            reason.push_str(&format!("; did you mean \"{best}\"?"));
        }
    }
    reason
}

/// The allowed name nearest to `name`, when it is near enough to be a typo.
fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The schema node at `schema_path` (a keyword location, `$ref`s included) of `root`.
pub(super) fn schema_node<'s>(
    docs: &Documents<'s>,
    root: &str,
    schema_path: &str,
) -> Option<&'s Value> {
    let mut doc_name = root.to_string();
    let mut node = docs(&doc_name)?;
    for raw in schema_path.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            let target = node.get("$ref")?.as_str()?;
            let (doc_part, fragment) = target.split_once('#').unwrap_or((target, ""));
            if !doc_part.is_empty() {
                doc_name = doc_part
                    .strip_prefix(BASE_URI)
                    .unwrap_or(doc_part)
                    .to_string();
            }
            let doc = docs(&doc_name)?;
            node = if fragment.is_empty() {
                doc
            } else {
                doc.pointer(fragment)?
            };
            continue;
        }
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The location without its last segment (the keyword).
fn parent_of(location: &str) -> &str {
    location.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// `path` extended by one property name, escaped as JSON pointers require.
fn child(path: &str, name: &str) -> String {
    format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// A value as shown in a reason: strings quoted, long values cut.
fn show(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX - 3).collect();
    match value {
        Value::String(_) => format!("{cut}...\""),
        _ => format!("{cut}..."),
    }
}

/// A value with its JSON type, for type errors: `string "abc"`, `integer 5`, `object`.
fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => format!("string {}", show(value)),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
    }
}

fn len(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    }
}

fn first_duplicate(value: &Value) -> Option<&Value> {
    let items = value.as_array()?;
    items
        .iter()
        .enumerate()
        .find(|(i, v)| items[..*i].contains(v))
        .map(|(_, v)| v)
}
