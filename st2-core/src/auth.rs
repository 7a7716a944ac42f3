//! Users and first-start bootstrap: the `st2admin` user with a random password.
//!
//! Passwords are hashed with Argon2id (PHC string format). Token and API-key handling for the
//! HTTP API builds on the same store collections.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distr::{Alphanumeric, SampleString};

use crate::model::User;
use crate::store::{repo, Query, Store};
use crate::{Error, Result};

/// The administrator created on first start.
pub const ADMIN_USER: &str = "st2admin";

/// The file (in the data dir) holding the first-start admin password.
pub const ADMIN_PASSWORD_FILE: &str = "st2admin.password";

/// Hashes a password (Argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| Error::Auth(format!("cannot encode salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Auth(format!("cannot hash password: {e}")))
}

/// True when `password` matches the stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates `st2admin` with a random password if no such user exists, writing the password to
/// `<data_dir>/st2admin.password` (mode 0600). Returns the file when it was just created.
pub async fn ensure_admin(store: &dyn Store, data_dir: &Path) -> Result<Option<PathBuf>> {
    let users = repo::<User>(store);
    if users
        .find_one(Query::all().eq("name", ADMIN_USER))
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let file = data_dir.join(ADMIN_PASSWORD_FILE);
    write_secret_file(&file, &format!("{password}\n"))
        .map_err(|e| Error::Auth(format!("cannot write {}: {e}", file.display())))?;
    users
        .save(User {
            id: String::new(),
            name: ADMIN_USER.into(),
            password_hash: Some(hash_password(&password)?),
        })
        .await?;
    Ok(Some(file))
}

/// Writes a file readable only by its owner.
pub(crate) fn write_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}

/// SHA-256 hex of a secret (tokens and API keys are stored only as this).
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Checks a user's password against the store.
pub async fn check_password(store: &dyn Store, user: &str, password: &str) -> Result<bool> {
    let users = repo::<User>(store);
    Ok(users
        .find_one(Query::all().eq("name", user))
        .await?
        .and_then(|u| u.password_hash)
        .is_some_and(|h| verify_password(password, &h)))
}

/// Issues a token for `user` valid for `ttl_secs`. The returned document carries the plain
/// token (shown once); the store keeps only its hash.
pub async fn issue_token(
    store: &dyn Store,
    user: &str,
    ttl_secs: u64,
) -> Result<crate::model::Token> {
    let plain = hex::encode(rand::random::<[u8; 16]>());
    let expiry = (chrono::Utc::now()
        + chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2)))
    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
    .to_string();
    let stored = crate::model::Token {
        id: String::new(),
        user: user.to_string(),
        token: secret_hash(&plain),
        expiry,
        metadata: serde_json::json!({}),
    };
    let mut saved = repo::<crate::model::Token>(store).save(stored).await?;
    saved.token = plain;
    Ok(saved)
}

/// The user a token belongs to, if it exists and has not expired.
pub async fn user_for_token(store: &dyn Store, token: &str) -> Result<Option<String>> {
    Ok(valid_token(store, token).await?.map(|(user, _)| user))
}

/// The user of a valid (existing, unexpired) token and its expiry as Unix seconds.
pub async fn valid_token(store: &dyn Store, token: &str) -> Result<Option<(String, i64)>> {
    let t = repo::<crate::model::Token>(store)
        .find_one(Query::all().eq("token", secret_hash(token)))
        .await?;
    Ok(t.and_then(|t| {
        let expiry = chrono::DateTime::parse_from_rfc3339(&t.expiry).ok()?;
        (expiry > chrono::Utc::now()).then(|| (t.user, expiry.timestamp()))
    }))
}

/// Creates an enabled API key for `user`. The returned document is the stored one (id,
/// `uid = api_key:<id>`, hash, creation time); the plain key, returned beside it, is shown once
/// and never stored.
pub async fn create_api_key(
    store: &dyn Store,
    user: &str,
    metadata: serde_json::Value,
) -> Result<(crate::model::ApiKey, String)> {
    let plain = hex::encode(rand::random::<[u8; 32]>());
    let id = crate::model::new_id();
    let doc = crate::model::ApiKey {
        uid: format!("api_key:{id}"),
        id,
        user: user.to_string(),
        key_hash: secret_hash(&plain),
        metadata,
        created_at: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        enabled: true,
    };
    let saved = repo::<crate::model::ApiKey>(store).save(doc).await?;
    Ok((saved, plain))
}

/// The user an API key belongs to, if it exists and is enabled.
pub async fn user_for_api_key(store: &dyn Store, key: &str) -> Result<Option<String>> {
    let k = repo::<crate::model::ApiKey>(store)
        .find_one(Query::all().eq("key_hash", secret_hash(key)))
        .await?;
    Ok(k.filter(|k| k.enabled).map(|k| k.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
