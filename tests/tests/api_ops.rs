//! Operations API end to end, through the real router on a whole platform:
//!
//! - keys: set/get/list/delete, secrets (ciphertext unless `decrypt`), user scope, prefix,
//!   ttl → `expire_timestamp` and expiry, 404s;
//! - API keys: create → authenticate with `St2-Api-Key` → disable → 401; `/user`;
//! - inquiries: `core.ask` answered with a bad, then a good response;
//! - packs: install from a real git repository (`file://`) through `POST /packs/install`,
//!   `GET /packs/<ref>`, uninstall → 404; register; index search without an index;
//! - configs: put/get, schema violation → 400, config schemas.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use git2::{Oid, Repository, Signature};
use serde_json::json;

use st2_core::model::ExecutionStatus;
use st2_tests::api::Harness;

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keys_set_get_list_delete() {
    let h = Harness::start().await;
    let put = h
        .put(
            "/api/v1/keys/api_url",
            json!({"name": "api_url", "value": "http://x", "scope": "system", "user": null}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["name"], "api_url");
    assert_eq!(put.body["value"], "http://x");
    assert_eq!(put.body["scope"], "st2kv.system");
    assert_eq!(put.body["uid"], "key_value_pair:st2kv.system:api_url");
    assert_eq!(put.body["secret"], false);
    assert_eq!(put.body["encrypted"], false);
    assert!(put.body["id"].as_str().is_some_and(|s| !s.is_empty()));

    // The client's trailing slash and Python booleans.
    let got = h
        .get("/api/v1/keys/api_url/?decrypt=false&scope=system")
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["value"], "http://x");

    h.put("/api/v1/keys/app.one", json!({"value": "1"})).await;
    h.put("/api/v1/keys/app.two", json!({"value": "2"})).await;
    let listed = h
        .get("/api/v1/keys/?prefix=app.&scope=all&decrypt=false")
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, vec!["app.one", "app.two"]);
    assert_eq!(listed.headers["x-total-count"], "2");
    let paged = h.get("/api/v1/keys?prefix=app.&limit=1&offset=1").await;
    assert_eq!(paged.body.as_array().map(Vec::len), Some(1));
    assert_eq!(paged.body[0]["name"], "app.two");

    let del = h.delete("/api/v1/keys/api_url?scope=system").await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = h.get("/api/v1/keys/api_url").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("api_url")));
    assert_eq!(
        h.delete("/api/v1/keys/api_url").await.status,
        StatusCode::NOT_FOUND
    );
    let bad_scope = h.get("/api/v1/keys/x?scope=nowhere").await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    let no_value = h.put("/api/v1/keys/x", json!({"name": "x"})).await;
    assert_eq!(no_value.status, StatusCode::BAD_REQUEST);
    assert!(no_value.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("value")));
}

#[tokio::test]
async fn keys_secrets_are_ciphertext_unless_decrypted() {
    let h = Harness::start().await;
    let put = h
        .put(
            "/api/v1/keys/password",
            json!({"name": "password", "value": "hunter2", "secret": true}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["secret"], true);
    assert_eq!(put.body["encrypted"], true);
    let cipher = put.body["value"].as_str().expect("value").to_string();
    assert_ne!(cipher, "hunter2");

    let plain = h.get("/api/v1/keys/password?decrypt=true").await;
    assert_eq!(plain.body["value"], "hunter2");
    assert_eq!(plain.body["encrypted"], false);
    let hidden = h.get("/api/v1/keys/password?decrypt=false").await;
    assert_eq!(hidden.body["encrypted"], true);
    assert_ne!(hidden.body["value"], "hunter2");
    let listed = h.get("/api/v1/keys?decrypt=True").await;
    let item = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["name"] == "password")
        .cloned()
        .expect("listed");
    assert_eq!(item["value"], "hunter2");

    // `--encrypted`: the ciphertext is accepted as is and decrypts to the same value.
    let imported = h
        .put(
            "/api/v1/keys/copy",
            json!({"name": "copy", "value": cipher, "encrypted": true}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{:?}", imported.body);
    let copy = h.get("/api/v1/keys/copy?decrypt=true").await;
    assert_eq!(copy.body["value"], "hunter2");
    let forged = h
        .put(
            "/api/v1/keys/forged",
            json!({"value": "deadbeef", "encrypted": true}),
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn keys_user_scope_belongs_to_the_caller() {
    let h = Harness::start().await;
    let put = h
        .put(
            "/api/v1/keys/mine",
            json!({"name": "mine", "value": "v", "scope": "user"}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["name"], "mine");
    assert_eq!(put.body["user"], "st2admin");
    assert_eq!(put.body["scope"], "st2kv.user");

    // Someone else's key, set by the admin with `user`.
    let other = h
        .put(
            "/api/v1/keys/theirs",
            json!({"value": "t", "scope": "st2kv.user", "user": "alice"}),
        )
        .await;
    assert_eq!(other.body["user"], "alice");

    assert_eq!(
        h.get("/api/v1/keys/mine").await.status,
        StatusCode::NOT_FOUND
    );
    let mine = h.get("/api/v1/keys/mine?scope=user").await;
    assert_eq!(mine.body["value"], "v");
    assert_eq!(
        h.get("/api/v1/keys/theirs?scope=user").await.status,
        StatusCode::NOT_FOUND
    );
    let theirs = h.get("/api/v1/keys/theirs?scope=user&user=alice").await;
    assert_eq!(theirs.body["value"], "t");

    let user_list = h.get("/api/v1/keys?scope=st2kv.user").await;
    let names: Vec<&str> = user_list
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, vec!["mine"]);
    assert_eq!(
        h.delete("/api/v1/keys/mine?scope=user").await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn keys_with_ttl_expire() {
    let h = Harness::start().await;
    let put = h
        .put("/api/v1/keys/short", json!({"value": "v", "ttl": 1}))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let ts = put.body["expire_timestamp"]
        .as_str()
        .expect("expire_timestamp");
    assert!(ts.ends_with('Z'), "{ts}");
    // Same fixed-width ISO-8601 format as `now_iso`, so the strings compare as times.
    assert_eq!(ts.len(), st2_core::services::now_iso().len(), "{ts}");
    assert!(ts > st2_core::services::now_iso().as_str(), "{ts}");
    let long = h
        .put("/api/v1/keys/long", json!({"value": "v", "ttl": 3600}))
        .await;
    assert!(long.body["expire_timestamp"].is_string());
    let bad = h
        .put("/api/v1/keys/neg", json!({"value": "v", "ttl": -5}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        h.get("/api/v1/keys/short").await.status,
        StatusCode::NOT_FOUND
    );
    let listed = h.get("/api/v1/keys").await;
    assert!(listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .all(|k| k["name"] != "short"));
    assert_eq!(h.get("/api/v1/keys/long").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// API keys and /user
// ---------------------------------------------------------------------------------------------

async fn get_with_key(h: &Harness, path: &str, key: &str) -> st2_tests::api::Answer {
    h.send(
        Request::get(path)
            .header("St2-Api-Key", key)
            .body(Body::empty())
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn api_keys_authenticate_until_disabled() {
    let h = Harness::start().await;
    let created = h
        .post("/api/v1/apikeys", json!({"metadata": {"purpose": "ci"}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let b = &created.body;
    let id = b["id"].as_str().expect("id").to_string();
    let key = b["key"].as_str().expect("key").to_string();
    assert_eq!(b["uid"], format!("api_key:{id}"));
    assert_eq!(b["user"], "st2admin");
    assert_eq!(b["enabled"], true);
    assert_eq!(b["metadata"], json!({"purpose": "ci"}));
    assert!(b["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(b.get("key_hash").is_none());

    let me = get_with_key(&h, "/api/v1/user", &key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "st2admin");
    assert_eq!(me.body["authentication"]["method"], "api key");
    assert_eq!(me.body["authentication"]["location"], "header");
    let by_query = h
        .send(
            Request::get(format!("/api/v1/user?st2-api-key={key}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(by_query.body["authentication"]["location"], "query");

    let listed = h.get("/api/v1/apikeys?user=st2admin").await;
    let items = listed.body.as_array().expect("list");
    assert_eq!(items.len(), 1);
    assert!(items[0].get("key").is_none() && items[0].get("key_hash").is_none());
    let secrets = h.get("/api/v1/apikeys?show_secrets=True").await;
    assert!(secrets.body[0]["key_hash"].is_string());
    assert_eq!(h.get("/api/v1/apikeys?user=nobody").await.body, json!([]));
    let one = h.get(&format!("/api/v1/apikeys/{id}")).await;
    assert_eq!(one.body["id"], id.as_str());

    // `st2 apikey disable`: the full object back with enabled flipped.
    let mut disabled = one.body.clone();
    disabled["enabled"] = json!(false);
    let put = h.put(&format!("/api/v1/apikeys/{id}"), disabled).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.body["enabled"], false);
    let refused = get_with_key(&h, "/api/v1/actions", &key).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let mut enabled = put.body.clone();
    enabled["enabled"] = json!(true);
    h.put(&format!("/api/v1/apikeys/{id}"), enabled).await;
    assert_eq!(
        get_with_key(&h, "/api/v1/actions", &key).await.status,
        StatusCode::OK
    );

    assert_eq!(
        h.delete(&format!("/api/v1/apikeys/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get_with_key(&h, "/api/v1/actions", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get(&format!("/api/v1/apikeys/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_shows_the_token_caller() {
    let h = Harness::start().await;
    let me = h.get("/api/v1/user").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.body,
        json!({
            "username": "st2admin",
            "authentication": {"method": "authentication token", "location": "header"},
            "rbac": {"enabled": false, "roles": [], "permissions": {}},
            "is_rbac_admin": true,
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Inquiries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inquiry_answered_bad_then_good() {
    let h = Harness::start().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "approved": {"type": "boolean", "required": true},
            "note": {"type": "string"}
        }
    });
    let run = h
        .post(
            "/api/v1/executions",
            json!({"action": "core.ask", "parameters": {"schema": schema, "route": "ops"}}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{:?}", run.body);
    let id = run.body["id"].as_str().expect("id").to_string();
    h.wait_execution(&id, |e| e.status == ExecutionStatus::Pending)
        .await;

    let listed = h.get("/api/v1/inquiries").await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.body.as_array().expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["route"], "ops");
    assert_eq!(items[0]["schema"], schema);
    assert_eq!(items[0]["users"], json!([]));
    assert_eq!(items[0]["roles"], json!([]));
    assert!(items[0]["ttl"].is_number());
    let one = h.get(&format!("/api/v1/inquiries/{id}")).await;
    assert_eq!(one.body["id"], id.as_str());

    let bad = h
        .put(
            &format!("/api/v1/inquiries/{id}"),
            json!({"id": id, "response": {"approved": "yes"}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    assert!(bad.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("approved")));
    let missing = h
        .put(
            &format!("/api/v1/inquiries/{id}"),
            json!({"id": id, "response": {"note": "hi"}}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    let good = h
        .put(
            &format!("/api/v1/inquiries/{id}"),
            json!({"id": id, "response": {"approved": true}}),
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{:?}", good.body);
    assert_eq!(good.body, json!({"id": id, "response": {"approved": true}}));

    let exec = h.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(exec.body["status"], "succeeded");
    let r = &exec.body["result"];
    assert_eq!(r["response"], json!({"approved": true}));
    assert_eq!(r["schema"], schema);
    assert_eq!(r["route"], "ops");
    assert!(r["users"].is_array() && r["roles"].is_array() && r["ttl"].is_number());

    assert_eq!(h.get("/api/v1/inquiries").await.body, json!([]));
    let again = h
        .put(
            &format!("/api/v1/inquiries/{id}"),
            json!({"id": id, "response": {"approved": false}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get("/api/v1/inquiries/5f0000000000000000000000")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------------------------
// Packs
// ---------------------------------------------------------------------------------------------

/// A bare git repository with one commit of `files` on `main`, tagged `v<version>`.
fn bare_repo(path: &Path, files: &BTreeMap<String, String>, version: &str) -> String {
    fn tree(repo: &Repository, files: &BTreeMap<String, String>) -> Oid {
        let mut tb = repo.treebuilder(None).expect("treebuilder");
        let mut subdirs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (p, text) in files {
            match p.split_once('/') {
                Some((dir, rest)) => {
                    subdirs
                        .entry(dir.into())
                        .or_default()
                        .insert(rest.into(), text.clone());
                }
                None => {
                    let blob = repo.blob(text.as_bytes()).expect("blob");
                    tb.insert(p, blob, 0o100644).expect("insert blob");
                }
            }
        }
        for (dir, sub) in subdirs {
            let t = tree(repo, &sub);
            tb.insert(&dir, t, 0o040000).expect("insert tree");
        }
        tb.write().expect("write tree")
    }
    let repo = Repository::init_bare(path).expect("init bare");
    let sig = Signature::now("st2 tests", "tests@example.com").expect("signature");
    let t = repo.find_tree(tree(&repo, files)).expect("tree");
    let oid = repo
        .commit(None, &sig, &sig, "commit", &t, &[])
        .expect("commit");
    repo.reference("refs/heads/main", oid, true, "branch")
        .expect("branch");
    repo.set_head("refs/heads/main").expect("head");
    let obj = repo.find_object(oid, None).expect("object");
    repo.tag(&format!("v{version}"), &obj, &sig, "release", false)
        .expect("tag");
    format!("file://{}", path.display())
}

fn hello_pack(pack_ref: &str, version: &str) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert(
        "pack.yaml".into(),
        format!(
            "---\nname: {pack_ref}\nref: {pack_ref}\ndescription: Says hello\nauthor: st2 tests\n\
             email: tests@example.com\nversion: {version}\n"
        ),
    );
    f.insert(
        "actions/hello.yaml".into(),
        "---\nname: hello\ndescription: Says hello\nrunner_type: local-shell-cmd\nenabled: true\n\
         parameters:\n  cmd:\n    default: \"echo hello\"\n"
            .into(),
    );
    f
}

#[tokio::test]
async fn pack_install_and_uninstall_run_as_executions() {
    let h = Harness::start().await;
    let repos = tempfile::tempdir().expect("tmp");
    let url = bare_repo(
        &repos.path().join("greeter.git"),
        &hello_pack("greeter", "1.2.0"),
        "1.2.0",
    );
    assert_eq!(
        h.get("/api/v1/packs/greeter").await.status,
        StatusCode::NOT_FOUND
    );

    let started = h
        .post(
            "/api/v1/packs/install",
            json!({"packs": [url], "force": false, "skip_dependencies": false}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let id = started.body["execution_id"]
        .as_str()
        .expect("execution_id")
        .to_string();
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{:?}", done.result);
    let exec = h.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(exec.body["action"]["ref"], "packs.install");
    let output = &exec.body["result"]["output"];
    assert_eq!(output["packs_list"], json!(["greeter"]));
    assert!(output["warning_list"].is_array());
    assert!(output["conflict_list"].is_array());

    let pack = h.get("/api/v1/packs/greeter").await;
    assert_eq!(pack.status, StatusCode::OK);
    assert_eq!(pack.body["ref"], "greeter");
    assert_eq!(pack.body["version"], "1.2.0");
    let listed = h
        .get("/api/v1/packs?include_attributes=ref,name,description,version,author")
        .await;
    assert!(listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .any(|p| p["ref"] == "greeter" && p["author"] == "st2 tests"));
    // Its action runs right away (the catalog was invalidated).
    let run = h
        .post("/api/v1/executions", json!({"action": "greeter.hello"}))
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{:?}", run.body);
    let ran = h.wait_done(run.body["id"].as_str().expect("id")).await;
    assert_eq!(ran.status, ExecutionStatus::Succeeded);
    let files = h.get("/api/v1/packs/views/files/greeter").await;
    assert!(files
        .body
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f["file_path"] == "actions/hello.yaml"));

    let removal = h
        .post("/api/v1/packs/uninstall", json!({"packs": ["greeter"]}))
        .await;
    assert_eq!(removal.status, StatusCode::ACCEPTED);
    let rid = removal.body["execution_id"]
        .as_str()
        .expect("id")
        .to_string();
    let removed = h.wait_done(&rid).await;
    assert_eq!(
        removed.status,
        ExecutionStatus::Succeeded,
        "{:?}",
        removed.result
    );
    assert_eq!(
        h.get("/api/v1/packs/greeter").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/api/v1/actions/greeter.hello").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pack_install_failure_is_a_failed_execution() {
    let h = Harness::start().await;
    let missing: PathBuf = h.dir.path().join("nowhere.git");
    let started = h
        .post(
            "/api/v1/packs/install",
            json!({"packs": [format!("file://{}", missing.display())]}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let id = started.body["execution_id"]
        .as_str()
        .expect("id")
        .to_string();
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, ExecutionStatus::Failed);
    let result = done.result.expect("result");
    assert!(result["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(result["output"]["packs_list"], json!([]));
    assert_eq!(result["output"]["warning_list"], json!([]));

    assert_eq!(
        h.post("/api/v1/packs/install", json!({"packs": []}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Bundled packs cannot be removed.
    let rm = h
        .post("/api/v1/packs/uninstall", json!({"packs": ["core"]}))
        .await;
    let failed = h
        .wait_done(rm.body["execution_id"].as_str().expect("id"))
        .await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    assert_eq!(h.get("/api/v1/packs/core").await.status, StatusCode::OK);
}

#[tokio::test]
async fn pack_register_and_index_search() {
    let h = Harness::start().await;
    let reg = h
        .post(
            "/api/v1/packs/register",
            json!({"packs": ["core"], "types": ["actions"]}),
        )
        .await;
    assert_eq!(reg.status, StatusCode::OK, "{:?}", reg.body);
    assert!(reg.body["actions"].as_u64().is_some_and(|n| n > 0));
    let unknown = h
        .post("/api/v1/packs/register", json!({"packs": ["no_such_pack"]}))
        .await;
    assert!(unknown.status.is_client_error());
    let bad_type = h
        .post("/api/v1/packs/register", json!({"types": ["gizmos"]}))
        .await;
    assert_eq!(bad_type.status, StatusCode::BAD_REQUEST);

    // No index configured: empty answers, never a 500.
    let search = h
        .post("/api/v1/packs/index/search", json!({"query": "aws"}))
        .await;
    assert_eq!(search.status, StatusCode::OK);
    assert_eq!(search.body, json!([]));
    let show = h
        .post("/api/v1/packs/index/search", json!({"pack": "aws"}))
        .await;
    assert_eq!(show.status, StatusCode::OK);
    assert_eq!(show.body, json!({}));
}

// ---------------------------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------------------------

fn write_conf_pack(data_dir: &Path) {
    let dir = data_dir.join("packs").join("opsconf");
    std::fs::create_dir_all(dir.join("actions")).expect("mkdir");
    std::fs::write(
        dir.join("pack.yaml"),
        "---\nname: opsconf\nref: opsconf\ndescription: Config test\nauthor: st2 tests\n\
         email: tests@example.com\nversion: 0.1.0\n",
    )
    .expect("pack.yaml");
    std::fs::write(
        dir.join("config.schema.yaml"),
        "---\napi_url:\n  type: string\n  required: true\nretries:\n  type: integer\n  default: 3\n\
         token:\n  type: string\n  secret: true\n",
    )
    .expect("schema");
}

#[tokio::test]
async fn configs_put_get_and_schema_violations() {
    let h = Harness::start_with(&[], write_conf_pack).await;
    let schema = h.get("/api/v1/config_schemas/opsconf").await;
    assert_eq!(schema.status, StatusCode::OK, "{:?}", schema.body);
    assert_eq!(schema.body["attributes"]["retries"]["default"], 3);
    assert!(h
        .get("/api/v1/config_schemas")
        .await
        .body
        .as_array()
        .expect("list")
        .iter()
        .any(|s| s["pack"] == "opsconf"));

    let bad = h
        .put("/api/v1/configs/opsconf", json!({"api_url": 42}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    assert!(bad.body["faultstring"]
        .as_str()
        .is_some_and(|f| f.contains("api_url")));
    let missing = h
        .put("/api/v1/configs/opsconf", json!({"retries": 1}))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get("/api/v1/configs/opsconf").await.status,
        StatusCode::NOT_FOUND
    );

    let put = h
        .put(
            "/api/v1/configs/opsconf",
            json!({"api_url": "http://x", "token": "s3cret"}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["pack"], "opsconf");
    assert_eq!(put.body["values"]["api_url"], "http://x");
    assert_eq!(put.body["values"]["retries"], 3);
    assert!(h.dir.path().join("configs").join("opsconf.yaml").is_file());

    let got = h.get("/api/v1/configs/opsconf").await;
    assert_eq!(got.body["values"]["api_url"], "http://x");
    assert_eq!(got.body["values"]["token"], "********");
    let shown = h.get("/api/v1/configs/opsconf?show_secrets=True").await;
    assert_eq!(shown.body["values"]["token"], "s3cret");
    assert!(h
        .get("/api/v1/configs")
        .await
        .body
        .as_array()
        .expect("list")
        .iter()
        .any(|c| c["pack"] == "opsconf"));
    assert_eq!(
        h.put("/api/v1/configs/no_such_pack", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
