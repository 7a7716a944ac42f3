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
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Creates `st2admin` with a random password if no such user exists, writing the password to
/// `<data_dir>/st2admin.password` (mode 0600). Returns the file when it was just created.
pub async fn ensure_admin(store: &dyn Store, data_dir: &Path) -> Result<Option<PathBuf>> {
    let users = repo::<User>(store);
    if users.find_one(Query::all().eq("name", ADMIN_USER)).await?.is_some() {
        return Ok(None);
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let file = data_dir.join(ADMIN_PASSWORD_FILE);
    write_secret_file(&file, &format!("{password}\n"))
        .map_err(|e| Error::Auth(format!("cannot write {}: {e}", file.display())))?;
    users
        .save(User { id: String::new(), name: ADMIN_USER.into(), password_hash: Some(hash_password(&password)?) })
        .await?;
    Ok(Some(file))
}

/// Writes a file readable only by its owner.
fn write_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
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
