//! The OpenAPI 3 document of the whole API, served at `/api/v1/openapi.json`.
//!
//! Built from [`ROUTES`], one line per method and path, so the document stays a plain table
//! next to the router; a test checks that every documented route is really served (no 404 or
//! 405) so the two cannot drift apart silently.

use axum::Json;
use serde_json::{json, Map, Value};

/// One documented operation: method, path (under its base), tag and summary.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Full path with `{param}` placeholders.
    pub path: &'static str,
    /// Resource group.
    pub tag: &'static str,
    /// What it does.
    pub summary: &'static str,
}

macro_rules! routes {
    ($($m:literal $p:literal $t:literal $s:literal;)*) => {
        &[$(Route { method: $m, path: $p, tag: $t, summary: $s }),*]
    };
}

/// Every operation of the API.
pub const ROUTES: &[Route] = routes! {
    "get" "/api/v1" "meta" "Version of the server and of the StackStorm API it serves.";
    "get" "/api/v1/openapi.json" "meta" "This document.";
    "post" "/auth/v1/tokens" "auth" "Create a token with HTTP basic auth (201; body {} or {\"ttl\": N}).";
    "get" "/api/v1/user" "auth" "The caller: username, authentication method, RBAC info.";
    "get" "/api/v1/apikeys" "auth" "List API keys (user filter; keys never shown).";
    "post" "/api/v1/apikeys" "auth" "Create an API key (201; the key is shown once).";
    "get" "/api/v1/apikeys/{id}" "auth" "One API key.";
    "put" "/api/v1/apikeys/{id}" "auth" "Update an API key (enable/disable).";
    "delete" "/api/v1/apikeys/{id}" "auth" "Delete an API key (204).";
    "get" "/api/v1/actions" "actions" "List actions (pack, name filters; paging).";
    "get" "/api/v1/actions/{ref_or_id}" "actions" "One action.";
    "get" "/api/v1/runnertypes" "actions" "List runner types (name filter).";
    "get" "/api/v1/runnertypes/{name_or_id}" "actions" "One runner type.";
    "get" "/api/v1/executions" "executions" "List executions, newest first (action, status, user, parent, trigger_instance, rule, timestamp_gt/lt).";
    "post" "/api/v1/executions" "executions" "Run an action (201).";
    "get" "/api/v1/executions/{id}" "executions" "One execution (include_attributes/exclude_attributes).";
    "put" "/api/v1/executions/{id}" "executions" "Pause or resume a workflow ({\"status\": \"pausing\"|\"resuming\"}).";
    "delete" "/api/v1/executions/{id}" "executions" "Cancel an execution.";
    "post" "/api/v1/executions/{id}/re_run" "executions" "Run the same action again (parameters override; workflow tasks).";
    "get" "/api/v1/executions/{id}/children" "executions" "Descendant executions (depth).";
    "get" "/api/v1/executions/{id}/output" "executions" "Stored live output as text/plain (output_type).";
    "get" "/api/v1/executions/{id}/result" "executions" "The result as JSON.";
    "get" "/api/v1/executions/{id}/attribute/{attribute}" "executions" "One attribute of an execution.";
    "get" "/api/v1/rules" "rules" "List rules (pack, action, trigger, enabled).";
    "post" "/api/v1/rules" "rules" "Create a rule (201).";
    "get" "/api/v1/rules/{ref_or_id}" "rules" "One rule.";
    "put" "/api/v1/rules/{ref_or_id}" "rules" "Update a rule (also enable/disable).";
    "delete" "/api/v1/rules/{ref_or_id}" "rules" "Delete a rule (204).";
    "get" "/api/v1/ruleenforcements" "rules" "List rule enforcements (rule, trigger_instance, execution).";
    "get" "/api/v1/ruleenforcements/{id}" "rules" "One rule enforcement.";
    "get" "/api/v1/sensortypes" "sensors" "List sensor types (pack, name, enabled, trigger_type).";
    "get" "/api/v1/sensortypes/{ref_or_id}" "sensors" "One sensor type.";
    "put" "/api/v1/sensortypes/{ref_or_id}" "sensors" "Enable or disable a sensor (only enabled changes).";
    "get" "/api/v1/triggertypes" "triggers" "List trigger types.";
    "get" "/api/v1/triggertypes/{ref_or_id}" "triggers" "One trigger type.";
    "get" "/api/v1/triggers" "triggers" "List triggers (type filter).";
    "get" "/api/v1/triggers/{ref_or_id}" "triggers" "One trigger.";
    "get" "/api/v1/triggerinstances" "triggers" "List trigger instances, newest first (trigger, status, timestamp_gt/lt).";
    "get" "/api/v1/triggerinstances/{id}" "triggers" "One trigger instance.";
    "post" "/api/v1/triggerinstances/{id}/re_emit" "triggers" "Dispatch a trigger instance's payload again.";
    "get" "/api/v1/webhooks" "webhooks" "List webhook triggers registered by rules.";
    "get" "/api/v1/webhooks/{url}" "webhooks" "One webhook trigger (404 when unknown).";
    "post" "/api/v1/webhooks/{url}" "webhooks" "Fire a webhook (202, body echoed); /webhooks/st2 dispatches {trigger, payload}.";
    "get" "/api/v1/keys" "keys" "List key-value pairs (scope, prefix, decrypt, user).";
    "get" "/api/v1/keys/{name}" "keys" "One key-value pair (scope, decrypt).";
    "put" "/api/v1/keys/{name}" "keys" "Set a key-value pair (secret, ttl, scope, user).";
    "delete" "/api/v1/keys/{name}" "keys" "Delete a key-value pair (204).";
    "get" "/api/v1/packs" "packs" "List installed packs.";
    "get" "/api/v1/packs/{ref_or_id}" "packs" "One pack.";
    "post" "/api/v1/packs/install" "packs" "Install packs: 202 {execution_id} of packs.install.";
    "post" "/api/v1/packs/uninstall" "packs" "Remove packs: 202 {execution_id} of packs.uninstall.";
    "post" "/api/v1/packs/register" "packs" "Register content of installed packs (packs, types).";
    "post" "/api/v1/packs/index/search" "packs" "Search the pack index ({query} or {pack}).";
    "get" "/api/v1/configs" "packs" "List pack configs.";
    "get" "/api/v1/configs/{pack}" "packs" "One pack's config.";
    "put" "/api/v1/configs/{pack}" "packs" "Set a pack's config (validated against its schema).";
    "get" "/api/v1/config_schemas" "packs" "List pack config schemas.";
    "get" "/api/v1/config_schemas/{pack}" "packs" "One pack's config schema.";
    "get" "/api/v1/policies" "policies" "List policies (pack, resource_ref, policy_type).";
    "get" "/api/v1/policies/{ref_or_id}" "policies" "One policy.";
    "get" "/api/v1/policytypes" "policies" "List policy types (resource_type).";
    "get" "/api/v1/policytypes/{ref_or_id}" "policies" "One policy type.";
    "get" "/api/v1/traces" "traces" "List traces, newest first (trace_tag, execution, rule, trigger_instance).";
    "get" "/api/v1/traces/{id}" "traces" "One trace.";
    "get" "/api/v1/inquiries" "inquiries" "List pending inquiries.";
    "get" "/api/v1/inquiries/{id}" "inquiries" "One inquiry.";
    "put" "/api/v1/inquiries/{id}" "inquiries" "Respond to an inquiry (validated against its schema).";
    "get" "/stream/v1/stream" "stream" "Server-sent events (events, action_refs, execution_ids, end_event, end_execution_id).";
};

/// The path parameters of a path template.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Query parameters every list operation takes.
fn list_params() -> Vec<Value> {
    [
        ("limit", "integer", "Page size (-1: all)."),
        ("offset", "integer", "Items skipped first."),
        ("include_attributes", "string", "Comma list of (dotted) fields to keep."),
        ("exclude_attributes", "string", "Comma list of (dotted) fields to drop."),
        ("sort_asc", "boolean", "Oldest first."),
        ("sort_desc", "boolean", "Newest first."),
    ]
    .iter()
    .map(|(n, t, d)| json!({"name": n, "in": "query", "required": false, "description": d, "schema": {"type": t}}))
    .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = path_params(r.path)
            .into_iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let is_list = r.method == "get" && path_params(r.path).is_empty() && r.tag != "meta";
        if is_list {
            params.extend(list_params());
        }
        let mut responses = Map::new();
        let ok = match r.method {
            "post" if r.summary.contains("202") => "202",
            "post" if r.summary.contains("201") => "201",
            "delete" if r.summary.contains("204") => "204",
            _ => "200",
        };
        responses.insert(ok.into(), json!({"description": "Success."}));
        responses.insert(
            "default".into(),
            json!({"description": "Error.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        let mut op = json!({
            "tags": [r.tag],
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if matches!(r.method, "post" | "put") {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if !matches!(
            r.path,
            "/api/v1" | "/api/v1/openapi.json" | "/auth/v1/tokens"
        ) {
            op["security"] = json!([{"token": []}, {"apiKey": []}]);
        }
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "st2-rs API (StackStorm-compatible)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("StackStorm's REST API, version {}.", crate::router::ST2_COMPAT_VERSION),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "St2-Api-Key"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"faultstring": {"type": "string"}}, "required": ["faultstring"]},
            },
        },
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_parameters() {
        let doc = document();
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            let op = &doc["paths"][r.path][r.method];
            assert_eq!(op["summary"], r.summary);
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(names, path_params(r.path));
        }
        assert_eq!(
            doc["paths"]["/api/v1/packs/install"]["post"]["responses"]["202"]["description"],
            "Success."
        );
    }
}
