//! The datastore against the embedded store: scopes and user keys, secrets encrypted at rest,
//! pre-encrypted values, TTL expiry and purge, change events, and the template lookup.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use st2_core::datastore::{
    crypto, Datastore, DatastoreError, KvEvent, ListKeys, Scope, SetKey, SymmetricKey,
};
use st2_core::model::KeyValuePair;
use st2_core::store::{repo, EmbeddedStore, Query, Store};
use st2_core::template::{KvLookup, KvScope, RenderContext, TemplateEngine};

/// StackStorm's test key (`st2tests/conf/st2_kvstore_tests.crypto.key.json`).
const ST2_TEST_KEY: &str = r#"{"hmacKey": {"hmacKeyString": "685EWJ8U2U_c3Ulv9ibB6aa0Y9aYm-0bCwe2mqjLJuw", "size": 256}, "aesKeyString": "eKGFrfNEUhAgX0uofaU1wQ", "mode": "CBC", "size": 128}"#;
/// `S3cret!Value` encrypted by StackStorm with that key.
const ST2_CIPHERTEXT: &str = "3030303030298D848B45A24EDCD1A82FAB4E831E3FCE6E60956817A48A180E4C040801EB30170DACF79498F30520236A629912C3584847098D";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

struct Fixture {
    store: Arc<EmbeddedStore>,
    ds: Datastore,
    events: Arc<Mutex<Vec<KvEvent>>>,
    clock: Arc<Mutex<DateTime<Utc>>>,
    key: SymmetricKey,
}

impl Fixture {
    fn new() -> Self {
        let store = Arc::new(EmbeddedStore::open_in_memory().expect("store"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let clock = Arc::new(Mutex::new(t0()));
        let key = SymmetricKey::from_json(ST2_TEST_KEY).expect("key");
        let (ev, ck) = (events.clone(), clock.clone());
        let ds = Datastore::new(store.clone())
            .with_key(key.clone())
            .with_events(move |e| ev.lock().expect("events").push(e))
            .with_clock(move || *ck.lock().expect("clock"));
        Fixture {
            store,
            ds,
            events,
            clock,
            key,
        }
    }

    fn take_events(&self) -> Vec<KvEvent> {
        std::mem::take(&mut *self.events.lock().expect("events"))
    }

    fn advance(&self, secs: i64) {
        *self.clock.lock().expect("clock") += TimeDelta::seconds(secs);
    }

    async fn raw(&self) -> Vec<KeyValuePair> {
        repo::<KeyValuePair>(self.store.as_ref())
            .find(&Query::all())
            .await
            .expect("raw")
    }
}

#[test]
fn crypto_round_trip_tamper_and_layout() {
    let key = crypto::generate_key();
    for plain in [
        "",
        "secret",
        "exactly16bytes!!",
        "ünïcødé ✓",
        &"x".repeat(1000),
    ] {
        let ct = crypto::encrypt(&key, plain);
        assert_eq!(crypto::decrypt(&key, &ct).expect("round trip"), plain);
        // Layout: "00000" header, 16-byte IV, whole AES blocks, 20-byte HMAC, upper-case hex.
        assert!(ct.starts_with("3030303030"), "{ct}");
        assert_eq!(ct, ct.to_uppercase());
        let len = ct.len() / 2;
        let body = len - crypto::HEADER_SIZE - crypto::BLOCK_SIZE - crypto::HMAC_SIZE;
        assert_eq!(body, (plain.len() / 16 + 1) * 16, "PKCS#7 always pads");
    }
    // A fresh IV each time.
    assert_ne!(crypto::encrypt(&key, "same"), crypto::encrypt(&key, "same"));

    // Any flipped byte — header, IV, ciphertext or signature — fails the HMAC check.
    let ct = crypto::encrypt(&key, "secret");
    for pos in [0, 12, 50, ct.len() - 2] {
        let mut bytes = ct.clone().into_bytes();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(
            matches!(
                crypto::decrypt(&key, &tampered),
                Err(crypto::CryptoError::IntegrityCheckFailed)
            ),
            "byte {pos}"
        );
    }
    // Another key, truncation, garbage.
    assert!(matches!(
        crypto::decrypt(&crypto::generate_key(), &ct),
        Err(crypto::CryptoError::IntegrityCheckFailed)
    ));
    assert!(crypto::decrypt(&key, &ct[..ct.len() - 2]).is_err());
    let err = crypto::decrypt(&key, "corrupted").expect_err("not hex");
    assert!(err.to_string().contains("malformed"), "{err}");
    let err = crypto::decrypt(&key, "3030").expect_err("short");
    assert!(err.to_string().contains("too short"), "{err}");

    // StackStorm's own vector and key file.
    let st2 = SymmetricKey::from_json(ST2_TEST_KEY).expect("st2 key");
    assert_eq!(
        st2.decrypt(ST2_CIPHERTEXT).expect("st2 vector"),
        "S3cret!Value"
    );
    assert_eq!(st2.to_json(), ST2_TEST_KEY);
}

#[test]
fn key_file_is_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("datastore_key.json");
    let key = SymmetricKey::generate();
    std::fs::write(&path, key.to_json()).expect("write");
    let read = SymmetricKey::read_file(&path).expect("read");
    assert_eq!(read.decrypt(&key.encrypt("hi")).expect("same key"), "hi");
    let err = SymmetricKey::read_file(&dir.path().join("missing.json")).expect_err("missing");
    assert!(
        err.to_string().contains("cannot read crypto key file"),
        "{err}"
    );
}

#[tokio::test]
async fn scopes_and_user_keys() {
    let f = Fixture::new();
    f.ds.set(SetKey::new("endpoint", "http://sys"))
        .await
        .expect("system");
    f.ds.set(SetKey::new("endpoint", "http://alice").user("alice"))
        .await
        .expect("alice");
    f.ds.set(SetKey::new("endpoint", "http://bob").user("bob"))
        .await
        .expect("bob");
    f.ds.set(SetKey::new("other", "o").user("alice"))
        .await
        .expect("alice 2");

    let sys =
        f.ds.get("endpoint", Scope::System, None, false)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(
        (sys.value.as_str(), sys.scope.as_str(), sys.user),
        ("http://sys", "st2kv.system", None)
    );
    assert_eq!(sys.uid, "key_value_pair:st2kv.system:endpoint");

    let alice =
        f.ds.get("endpoint", Scope::User, Some("alice"), false)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(alice.value, "http://alice");
    assert_eq!(alice.name, "endpoint", "API shape drops the owner prefix");
    assert_eq!(alice.user.as_deref(), Some("alice"));
    assert_eq!(alice.uid, "key_value_pair:st2kv.user:alice:endpoint");
    let bob =
        f.ds.get("endpoint", Scope::User, Some("bob"), false)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(bob.value, "http://bob");
    assert!(f
        .ds
        .get("endpoint", Scope::User, Some("carol"), false)
        .await
        .expect("get")
        .is_none());

    // Stored as `<user>:<key>` with the full scope name.
    let mut stored: Vec<(String, String)> = f
        .raw()
        .await
        .into_iter()
        .map(|p| (p.scope, p.name))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        vec![
            ("st2kv.system".to_string(), "endpoint".to_string()),
            ("st2kv.user".into(), "alice:endpoint".into()),
            ("st2kv.user".into(), "alice:other".into()),
            ("st2kv.user".into(), "bob:endpoint".into()),
        ]
    );

    // Aliases and bad scopes.
    assert_eq!("system".parse::<Scope>().expect("alias"), Scope::System);
    assert_eq!("user".parse::<Scope>().expect("alias"), Scope::User);
    assert_eq!("st2kv.user".parse::<Scope>().expect("full"), Scope::User);
    assert!(matches!(
        "st2".parse::<Scope>(),
        Err(DatastoreError::InvalidScope { .. })
    ));
    assert!(matches!(
        f.ds.get("endpoint", Scope::User, None, false).await,
        Err(DatastoreError::MissingUser { .. })
    ));
    assert!(matches!(
        f.ds.set(SetKey::new("x", "y").scope(Scope::User)).await,
        Err(DatastoreError::MissingUser { .. })
    ));

    // Listing: "all" = system + own keys; prefixes apply to the name without the owner.
    let names = |v: Vec<KeyValuePair>| -> Vec<(String, String)> {
        v.into_iter().map(|p| (p.scope, p.name)).collect()
    };
    let all =
        f.ds.list(&ListKeys {
            user: Some("alice".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        names(all),
        vec![
            ("st2kv.system".to_string(), "endpoint".to_string()),
            ("st2kv.user".into(), "endpoint".into()),
            ("st2kv.user".into(), "other".into()),
        ]
    );
    let own = ListKeys {
        scope: Some(Scope::User),
        user: Some("alice".into()),
        prefix: Some("oth".into()),
        ..Default::default()
    };
    assert_eq!(
        names(f.ds.list(&own).await.expect("list")),
        vec![("st2kv.user".to_string(), "other".to_string())]
    );
    // A prefix cannot reach another user's keys.
    let sneaky = ListKeys {
        scope: Some(Scope::User),
        user: Some("alice".into()),
        prefix: Some("bob:".into()),
        ..Default::default()
    };
    assert!(f.ds.list(&sneaky).await.expect("list").is_empty());
    let system = ListKeys {
        scope: Some(Scope::System),
        ..Default::default()
    };
    assert_eq!(f.ds.list(&system).await.expect("list").len(), 1);
    assert!(matches!(
        f.ds.list(&ListKeys {
            scope: Some(Scope::User),
            ..Default::default()
        })
        .await,
        Err(DatastoreError::MissingUser { .. })
    ));

    // Delete is per scope and user.
    assert!(f
        .ds
        .delete("endpoint", Scope::User, Some("alice"))
        .await
        .expect("delete")
        .is_some());
    assert!(f
        .ds
        .get("endpoint", Scope::User, Some("alice"), false)
        .await
        .expect("get")
        .is_none());
    assert!(f
        .ds
        .get("endpoint", Scope::User, Some("bob"), false)
        .await
        .expect("get")
        .is_some());
    assert!(f
        .ds
        .get("endpoint", Scope::System, None, false)
        .await
        .expect("get")
        .is_some());
    assert!(f
        .ds
        .delete("endpoint", Scope::User, Some("alice"))
        .await
        .expect("delete")
        .is_none());
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let f = Fixture::new();
    let put =
        f.ds.set(SetKey::new("password", "hunter2").secret())
            .await
            .expect("secret");
    // The write answers with the ciphertext, like StackStorm's PUT.
    assert!(put.secret && put.encrypted);
    assert_ne!(put.value, "hunter2");

    let raw = f.raw().await;
    assert_eq!(raw.len(), 1);
    assert_ne!(raw[0].value, "hunter2");
    assert_eq!(
        f.key.decrypt(&raw[0].value).expect("ciphertext at rest"),
        "hunter2"
    );

    let masked =
        f.ds.get("password", Scope::System, None, false)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(
        masked.value, raw[0].value,
        "without decrypt: the ciphertext"
    );
    assert!(masked.secret && masked.encrypted);
    let plain =
        f.ds.get("password", Scope::System, None, true)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(plain.value, "hunter2");
    assert!(plain.secret && !plain.encrypted);
    let listed =
        f.ds.list(&ListKeys {
            decrypt: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed[0].value, "hunter2");

    // Plain values are untouched by decrypt.
    f.ds.set(SetKey::new("plain", "v")).await.expect("plain");
    let p =
        f.ds.get("plain", Scope::System, None, true)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(
        (p.value.as_str(), p.secret, p.encrypted),
        ("v", false, false)
    );

    // User-scoped secrets too.
    f.ds.set(SetKey::new("ssn", "123-456-7890").user("alice").secret())
        .await
        .expect("user secret");
    let ssn =
        f.ds.get("ssn", Scope::User, Some("alice"), true)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(ssn.value, "123-456-7890");

    // Without a key: secrets can be neither written nor decrypted.
    let keyless = Datastore::new(f.store.clone());
    let err = keyless
        .set(SetKey::new("pw", "x").secret())
        .await
        .expect_err("no key");
    assert!(
        matches!(err, DatastoreError::CryptoKeyMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Crypto key not found"), "{err}");
    let err = keyless
        .get("password", Scope::System, None, true)
        .await
        .expect_err("no key");
    assert!(
        matches!(err, DatastoreError::CryptoKeyMissing { .. }),
        "{err}"
    );
    // ... but still read as ciphertext.
    let c = keyless
        .get("password", Scope::System, None, false)
        .await
        .expect("get")
        .expect("some");
    assert!(c.encrypted);
}

#[tokio::test]
async fn pre_encrypted_values_are_verified_and_stored_as_is() {
    let f = Fixture::new();
    // StackStorm's own ciphertext; encrypted implies secret.
    let put =
        f.ds.set(SetKey::new("secret_key1", ST2_CIPHERTEXT).pre_encrypted())
            .await
            .expect("put");
    assert_eq!(put.value, ST2_CIPHERTEXT);
    assert!(put.secret && put.encrypted);
    let got =
        f.ds.get("secret_key1", Scope::System, None, true)
            .await
            .expect("get")
            .expect("some");
    assert_eq!(got.value, "S3cret!Value");

    for corrupted in [
        "corrupted".to_string(),
        ST2_CIPHERTEXT[..ST2_CIPHERTEXT.len() - 2].to_string(),
    ] {
        let err =
            f.ds.set(SetKey::new("secret_key1", corrupted).pre_encrypted())
                .await
                .expect_err("corrupted");
        assert!(
            matches!(err, DatastoreError::IntegrityCheckFailed { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(
                "Failed to verify the integrity of the provided value for key \"secret_key1\"."
            ),
            "{err}"
        );
    }
    let keyless = Datastore::new(f.store.clone());
    let err = keyless
        .set(SetKey::new("k", ST2_CIPHERTEXT).pre_encrypted())
        .await
        .expect_err("no key");
    assert!(
        matches!(err, DatastoreError::CryptoKeyMissing { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn ttl_expiry_and_purge() {
    let f = Fixture::new();
    let put =
        f.ds.set(SetKey::new("session", "abc").ttl(10))
            .await
            .expect("ttl");
    assert_eq!(
        put.expire_timestamp.as_deref(),
        Some("2024-05-01T10:00:10.000000Z")
    );
    assert_eq!(put.ttl, Some(10));
    f.ds.set(SetKey::new("forever", "x")).await.expect("no ttl");
    f.ds.set(SetKey::new("zero", "x").ttl(0))
        .await
        .expect("zero ttl never expires");

    f.advance(9);
    assert!(f
        .ds
        .get("session", Scope::System, None, false)
        .await
        .expect("get")
        .is_some());
    assert_eq!(f.ds.purge_expired().await.expect("purge"), 0);

    f.advance(1);
    assert!(
        f.ds.get("session", Scope::System, None, false)
            .await
            .expect("get")
            .is_none(),
        "expired at now + ttl"
    );
    let names: Vec<String> =
        f.ds.list(&ListKeys::default())
            .await
            .expect("list")
            .into_iter()
            .map(|p| p.name)
            .collect();
    assert_eq!(names, vec!["forever", "zero"]);
    assert_eq!(f.raw().await.len(), 3, "still stored until purged");

    f.take_events();
    assert_eq!(f.ds.purge_expired().await.expect("purge"), 1);
    assert_eq!(f.raw().await.len(), 2);
    assert!(
        f.take_events().is_empty(),
        "expiry fires no trigger (Mongo TTL index parity)"
    );

    // Re-setting without a TTL clears the expiry; setting over an expired key is a create.
    f.ds.set(SetKey::new("session", "abc").ttl(5))
        .await
        .expect("ttl");
    f.advance(6);
    f.take_events();
    f.ds.set(SetKey::new("session", "def"))
        .await
        .expect("revive");
    assert!(matches!(
        f.take_events().as_slice(),
        [KvEvent::Create { .. }]
    ));
    f.advance(3600);
    let got =
        f.ds.get("session", Scope::System, None, false)
            .await
            .expect("get")
            .expect("no expiry now");
    assert_eq!((got.value.as_str(), got.expire_timestamp), ("def", None));
}

#[tokio::test]
async fn change_events_follow_stackstorm() {
    let f = Fixture::new();
    f.ds.set(SetKey::new("k", "v1")).await.expect("create");
    let events = f.take_events();
    let [KvEvent::Create { object }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(events[0].trigger_ref(), "core.st2.key_value_pair.create");
    assert_eq!(object["name"], "k");
    assert_eq!(object["value"], "v1");
    assert_eq!(object["scope"], "st2kv.system");
    assert_eq!(object["secret"], false);
    assert_eq!(object["encrypted"], false);
    assert_eq!(object["uid"], "key_value_pair:st2kv.system:k");
    assert_eq!(events[0].payload(), json!({"object": object}));

    // Same value: update only.
    f.ds.set(SetKey::new("k", "v1")).await.expect("same");
    let events = f.take_events();
    assert!(
        matches!(events.as_slice(), [KvEvent::Update { .. }]),
        "{events:?}"
    );
    assert_eq!(events[0].trigger_ref(), "core.st2.key_value_pair.update");

    // New value: update, then value_change with old and new objects.
    f.ds.set(SetKey::new("k", "v2")).await.expect("change");
    let events = f.take_events();
    let [KvEvent::Update { object }, change @ KvEvent::ValueChange {
        old_object,
        new_object,
    }] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(object["value"], "v2");
    assert_eq!(
        (old_object["value"].clone(), new_object["value"].clone()),
        (json!("v1"), json!("v2"))
    );
    assert_eq!(change.trigger_ref(), "core.st2.key_value_pair.value_change");
    let payload = change.payload();
    assert_eq!(payload["old_object"]["value"], "v1");
    assert_eq!(payload["new_object"]["value"], "v2");

    // Secrets: payloads carry ciphertext; re-setting the same secret is no value change.
    f.ds.set(SetKey::new("pw", "a").secret())
        .await
        .expect("secret");
    let events = f.take_events();
    let [KvEvent::Create { object }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(object["encrypted"], true);
    assert_ne!(object["value"], "a");
    f.ds.set(SetKey::new("pw", "a").secret())
        .await
        .expect("same secret");
    assert!(matches!(
        f.take_events().as_slice(),
        [KvEvent::Update { .. }]
    ));
    f.ds.set(SetKey::new("pw", "b").secret())
        .await
        .expect("new secret");
    assert!(matches!(
        f.take_events().as_slice(),
        [KvEvent::Update { .. }, KvEvent::ValueChange { .. }]
    ));

    // User keys: the object names the user and the bare key.
    f.ds.set(SetKey::new("k", "u").user("alice"))
        .await
        .expect("user");
    let events = f.take_events();
    let [KvEvent::Create { object }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (object["name"].clone(), object["user"].clone()),
        (json!("k"), json!("alice"))
    );
    assert_eq!(object["scope"], "st2kv.user");

    // Delete: one event with the deleted object; deleting nothing reports nothing.
    f.ds.delete("k", Scope::System, None).await.expect("delete");
    let events = f.take_events();
    let [KvEvent::Delete { object }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(object["value"], "v2");
    assert_eq!(events[0].trigger_ref(), "core.st2.key_value_pair.delete");
    assert!(f
        .ds
        .delete("k", Scope::System, None)
        .await
        .expect("delete")
        .is_none());
    assert!(f.take_events().is_empty());
}

#[tokio::test]
async fn template_lookup_tracks_writes() {
    let f = Fixture::new();
    f.ds.set(SetKey::new("api.url", "http://x"))
        .await
        .expect("before load");
    f.ds.set(SetKey::new("token", "t0k3n").user("alice"))
        .await
        .expect("user");
    f.ds.set(SetKey::new("pw", "hunter2").secret())
        .await
        .expect("secret");
    f.ds.set(SetKey::new("short", "lived").ttl(5))
        .await
        .expect("ttl");

    let lookup = f.ds.lookup().await.expect("lookup");
    assert_eq!(
        lookup
            .get(KvScope::System, None, "api.url")
            .map(|v| v.value)
            .as_deref(),
        Some("http://x")
    );
    assert_eq!(
        lookup
            .get(KvScope::User, Some("alice"), "token")
            .map(|v| v.value)
            .as_deref(),
        Some("t0k3n")
    );
    assert!(lookup.get(KvScope::User, Some("bob"), "token").is_none());
    assert!(lookup.get(KvScope::User, None, "token").is_none());
    let pw = lookup.get(KvScope::System, None, "pw").expect("secret");
    assert!(pw.secret && pw.encrypted && pw.value != "hunter2");

    // Writes through the datastore show up at once; expiry is checked at read time.
    f.ds.set(SetKey::new("api.url", "http://y"))
        .await
        .expect("update");
    f.ds.set(SetKey::new("new", "n")).await.expect("create");
    f.ds.delete("token", Scope::User, Some("alice"))
        .await
        .expect("delete");
    assert_eq!(
        lookup
            .get(KvScope::System, None, "api.url")
            .map(|v| v.value)
            .as_deref(),
        Some("http://y")
    );
    assert!(lookup.get(KvScope::System, None, "new").is_some());
    assert!(lookup.get(KvScope::User, Some("alice"), "token").is_none());
    assert!(lookup.get(KvScope::System, None, "short").is_some());
    f.advance(5);
    assert!(lookup.get(KvScope::System, None, "short").is_none());

    // Writes by someone else are seen after a refresh.
    let other = Datastore::new(f.store.clone());
    other
        .set(SetKey::new("elsewhere", "e"))
        .await
        .expect("other writer");
    assert!(lookup.get(KvScope::System, None, "elsewhere").is_none());
    f.ds.refresh_cache().await.expect("refresh");
    assert!(lookup.get(KvScope::System, None, "elsewhere").is_some());

    // Through the template engine, with the key as `decrypt_kv`'s decrypter.
    let ctx = RenderContext::new()
        .with_kv(Arc::new(lookup), Some("alice".into()))
        .with_decrypter(Arc::new(f.key.clone()));
    let engine = TemplateEngine::new();
    assert_eq!(
        engine
            .render_str("{{ st2kv.system.api.url }}", &ctx)
            .expect("render"),
        "http://y"
    );
    assert_eq!(
        engine
            .render_str("{{ st2kv.system.pw | decrypt_kv }}", &ctx)
            .expect("render"),
        "hunter2"
    );
    assert_ne!(
        engine
            .render_str("{{ st2kv.system.pw }}", &ctx)
            .expect("render"),
        "hunter2"
    );
}

#[tokio::test]
async fn store_trait_object_is_enough() {
    // The datastore only needs `Arc<dyn Store>`.
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open_in_memory().expect("store"));
    let ds = Datastore::new(store);
    ds.set(SetKey::new("a", "1")).await.expect("set");
    assert_eq!(
        ds.get("a", Scope::System, None, false)
            .await
            .expect("get")
            .map(|p| p.value)
            .as_deref(),
        Some("1")
    );
}
