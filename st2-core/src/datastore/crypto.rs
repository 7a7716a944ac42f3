//! StackStorm-compatible symmetric encryption of datastore secrets.
//!
//! StackStorm (`st2common/util/crypto.py`) encrypts secret values with AES in CBC mode plus an
//! HMAC-SHA1 signature, in the byte layout keyczar's `AesKey.Encrypt()` produced, so values
//! written by either side decrypt on the other:
//!
//! ```text
//! hex_upper( header(5) | iv(16) | aes_cbc_pkcs7(plaintext) | hmac_sha1(header | iv | ciphertext)(20) )
//! ```
//!
//! The header is the five ASCII bytes `"00000"` (StackStorm writes them and ignores them on
//! decryption, so only their length matters); the HMAC covers everything before it. Keys live
//! in keyczar's JSON key file format (what `st2-generate-symmetric-crypto-key` writes):
//!
//! ```json
//! {"hmacKey": {"hmacKeyString": "<base64url>", "size": 256}, "aesKeyString": "<base64url>", "mode": "CBC", "size": 256}
//! ```
//!
//! Key strings are web-safe base64 without padding. AES keys of 128, 192 and 256 bits are
//! accepted (StackStorm's own test key is AES-128); new keys are 256-bit.
//!
//! This file is pure: no store, no configuration reads (the caller passes the key path).

use std::fmt;
use std::path::Path;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Length of the (ignored) keyczar header at the start of every ciphertext.
pub const HEADER_SIZE: usize = 5;
/// The header StackStorm writes: five ASCII zeros (not zero bytes).
pub const HEADER: &[u8; HEADER_SIZE] = b"00000";
/// AES block size, also the IV length.
pub const BLOCK_SIZE: usize = 16;
/// Length of the HMAC-SHA1 signature at the end of every ciphertext.
pub const HMAC_SIZE: usize = 20;
/// Key size (bits) of newly generated keys, as StackStorm's `DEFAULT_AES_KEY_SIZE`.
pub const DEFAULT_KEY_SIZE: u32 = 256;
/// Smallest key size (bits) accepted, as StackStorm's `MINIMUM_AES_KEY_SIZE`.
pub const MINIMUM_KEY_SIZE: u32 = 128;

type HmacSha1 = Hmac<Sha1>;

/// What can go wrong reading keys or encrypting / decrypting values.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file could not be read.
    #[error("cannot read crypto key file {path:?}: {source}")]
    ReadKeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key JSON is malformed or describes an unusable key.
    #[error("invalid or malformed crypto key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The ciphertext is not hex, is too short, or does not decrypt to UTF-8 text.
    #[error("invalid or malformed ciphertext: {reason}")]
    MalformedCiphertext {
        /// What is wrong with it.
        reason: String,
    },
    /// The HMAC signature does not match: the value was tampered with or encrypted with another key.
    #[error("ciphertext integrity check failed (HMAC mismatch): value corrupted or encrypted with a different key")]
    IntegrityCheckFailed,
}

/// The AES key of a [`SymmetricKey`], by size.
#[derive(Clone)]
enum AesKey {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl AesKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let invalid = || CryptoError::InvalidKey {
            reason: format!(
                "AES key is {} bytes; expected 16, 24 or 32 (128, 192 or 256 bits)",
                bytes.len()
            ),
        };
        Ok(match bytes.len() {
            16 => AesKey::Aes128(bytes.try_into().map_err(|_| invalid())?),
            24 => AesKey::Aes192(bytes.try_into().map_err(|_| invalid())?),
            32 => AesKey::Aes256(bytes.try_into().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            AesKey::Aes128(k) => k,
            AesKey::Aes192(k) => k,
            AesKey::Aes256(k) => k,
        }
    }

    fn encrypt(&self, iv: &[u8; BLOCK_SIZE], data: &[u8]) -> Vec<u8> {
        match self {
            AesKey::Aes128(k) => cbc::Encryptor::<aes::Aes128>::new(k.into(), iv.into())
                .encrypt_padded_vec_mut::<Pkcs7>(data),
            AesKey::Aes192(k) => cbc::Encryptor::<aes::Aes192>::new(k.into(), iv.into())
                .encrypt_padded_vec_mut::<Pkcs7>(data),
            AesKey::Aes256(k) => cbc::Encryptor::<aes::Aes256>::new(k.into(), iv.into())
                .encrypt_padded_vec_mut::<Pkcs7>(data),
        }
    }

    fn decrypt(&self, iv: &[u8; BLOCK_SIZE], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let out = match self {
            AesKey::Aes128(k) => cbc::Decryptor::<aes::Aes128>::new(k.into(), iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(data),
            AesKey::Aes192(k) => cbc::Decryptor::<aes::Aes192>::new(k.into(), iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(data),
            AesKey::Aes256(k) => cbc::Decryptor::<aes::Aes256>::new(k.into(), iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(data),
        };
        out.map_err(|_| CryptoError::MalformedCiphertext {
            reason: "bad PKCS#7 padding".into(),
        })
    }
}

/// An AES key with its HMAC key: StackStorm's `AESKey` (keyczar's `AesKey` + `HmacKey`).
///
/// `Debug` never shows key material.
#[derive(Clone)]
pub struct SymmetricKey {
    aes: AesKey,
    hmac: Vec<u8>,
    /// `hmacKey.size` as written in the key file (bits), kept so `to_json` round-trips.
    hmac_size: u32,
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same shape as StackStorm's AESKey.__repr__: sizes and mode, never the keys.
        write!(
            f,
            "SymmetricKey {{ hmac_key_size: {}, mode: CBC, size: {} }}",
            self.hmac_size,
            self.size()
        )
    }
}

impl SymmetricKey {
    /// A fresh random 256-bit AES key and 256-bit HMAC key (`st2-generate-symmetric-crypto-key`).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut aes = [0u8; 32];
        let mut hmac = vec![0u8; 32];
        rng.fill_bytes(&mut aes);
        rng.fill_bytes(&mut hmac);
        SymmetricKey {
            aes: AesKey::Aes256(aes),
            hmac,
            hmac_size: DEFAULT_KEY_SIZE,
        }
    }

    /// A key from raw bytes: `aes` must be 16, 24 or 32 bytes, `hmac` at least 16 bytes.
    pub fn from_bytes(aes: &[u8], hmac: &[u8]) -> Result<Self, CryptoError> {
        let aes = AesKey::from_bytes(aes)?;
        if hmac.len() * 8 < MINIMUM_KEY_SIZE as usize {
            return Err(CryptoError::InvalidKey {
                reason: format!("HMAC key is {} bytes; at least 16 are required", hmac.len()),
            });
        }
        Ok(SymmetricKey {
            aes,
            hmac: hmac.to_vec(),
            hmac_size: (hmac.len() * 8) as u32,
        })
    }

    /// Parses keyczar's JSON key format (see the module docs).
    pub fn from_json(json: &str) -> Result<Self, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidKey { reason };
        let doc: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let field = |v: &serde_json::Value, name: &str| -> Result<serde_json::Value, CryptoError> {
            v.get(name)
                .cloned()
                .ok_or_else(|| invalid(format!("missing field {name:?}")))
        };
        let string = |v: serde_json::Value, name: &str| -> Result<String, CryptoError> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("field {name:?} must be a string")))
        };
        let size = |v: serde_json::Value, name: &str| -> Result<u32, CryptoError> {
            // StackStorm calls int() on sizes, so "256" and 256 are both fine.
            match &v {
                serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid(format!("field {name:?} must be an integer")))
        };

        let mode = string(field(&doc, "mode")?, "mode")?;
        if !mode.eq_ignore_ascii_case("CBC") {
            return Err(invalid(format!("unsupported mode {mode:?} (only CBC)")));
        }
        let aes_size = size(field(&doc, "size")?, "size")?;
        if aes_size < MINIMUM_KEY_SIZE {
            return Err(invalid(format!("unsafe key size {aes_size}")));
        }
        let hmac_doc = field(&doc, "hmacKey")?;
        let hmac_string = string(field(&hmac_doc, "hmacKeyString")?, "hmacKey.hmacKeyString")?;
        let hmac_size = size(field(&hmac_doc, "size")?, "hmacKey.size")?;
        let aes_string = string(field(&doc, "aesKeyString")?, "aesKeyString")?;

        let aes_bytes =
            base64_ws_decode(&aes_string).map_err(|e| invalid(format!("aesKeyString: {e}")))?;
        if aes_bytes.len() * 8 != aes_size as usize {
            return Err(invalid(format!(
                "aesKeyString holds {} bits but size says {aes_size}",
                aes_bytes.len() * 8
            )));
        }
        let hmac_bytes =
            base64_ws_decode(&hmac_string).map_err(|e| invalid(format!("hmacKeyString: {e}")))?;
        if hmac_bytes.is_empty() {
            return Err(invalid("empty hmacKeyString".into()));
        }
        Ok(SymmetricKey {
            aes: AesKey::from_bytes(&aes_bytes)?,
            hmac: hmac_bytes,
            hmac_size,
        })
    }

    /// Reads a key file (`keyvalue.encryption_key_path`).
    pub fn read_file(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::ReadKeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// The key in keyczar's JSON format, byte-for-byte what StackStorm's `AESKey.to_json()`
    /// (Python's `json.dumps`) writes.
    pub fn to_json(&self) -> String {
        // Base64url strings need no JSON escaping.
        format!(
            r#"{{"hmacKey": {{"hmacKeyString": "{}", "size": {}}}, "aesKeyString": "{}", "mode": "CBC", "size": {}}}"#,
            base64_ws_encode(&self.hmac),
            self.hmac_size,
            base64_ws_encode(self.aes.bytes()),
            self.size()
        )
    }

    /// AES key size in bits.
    pub fn size(&self) -> u32 {
        (self.aes.bytes().len() * 8) as u32
    }

    /// Encrypts `plaintext` (UTF-8) with a random IV; the result is upper-case hex.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut iv = [0u8; BLOCK_SIZE];
        rand::rng().fill_bytes(&mut iv);
        self.encrypt_with_iv(plaintext, &iv)
    }

    /// Encrypts with a given IV (deterministic; for layout tests only: never reuse IVs).
    pub fn encrypt_with_iv(&self, plaintext: &str, iv: &[u8; BLOCK_SIZE]) -> String {
        let ciphertext = self.aes.encrypt(iv, plaintext.as_bytes());
        let mut msg = Vec::with_capacity(HEADER_SIZE + BLOCK_SIZE + ciphertext.len() + HMAC_SIZE);
        msg.extend_from_slice(HEADER);
        msg.extend_from_slice(iv);
        msg.extend_from_slice(&ciphertext);
        let signature = self.mac().chain_update(&msg).finalize().into_bytes();
        msg.extend_from_slice(&signature);
        hex::encode_upper(msg)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) (or StackStorm, or keyczar) produced: checks the
    /// HMAC first, then decrypts and unpads. Hex of either case is accepted.
    pub fn decrypt(&self, ciphertext: &str) -> Result<String, CryptoError> {
        let malformed = |reason: &str| CryptoError::MalformedCiphertext {
            reason: reason.into(),
        };
        let bytes = hex::decode(ciphertext.trim()).map_err(|_| malformed("not hex"))?;
        if bytes.len() < HEADER_SIZE + BLOCK_SIZE + HMAC_SIZE {
            return Err(malformed("too short"));
        }
        let (signed, signature) = bytes.split_at(bytes.len() - HMAC_SIZE);
        self.mac()
            .chain_update(signed)
            .verify_slice(signature)
            .map_err(|_| CryptoError::IntegrityCheckFailed)?;
        let body = &signed[HEADER_SIZE..];
        let (iv, data) = body.split_at(BLOCK_SIZE);
        if data.is_empty() || data.len() % BLOCK_SIZE != 0 {
            return Err(malformed("ciphertext is not a whole number of AES blocks"));
        }
        let iv: &[u8; BLOCK_SIZE] = iv.try_into().map_err(|_| malformed("short IV"))?;
        let plain = self.aes.decrypt(iv, data)?;
        String::from_utf8(plain).map_err(|_| malformed("plaintext is not UTF-8"))
    }

    fn mac(&self) -> HmacSha1 {
        // HMAC accepts keys of any length; this cannot fail.
        <HmacSha1 as Mac>::new_from_slice(&self.hmac).expect("HMAC takes keys of any length")
    }
}

/// A new random key (`st2-generate-symmetric-crypto-key`).
pub fn generate_key() -> SymmetricKey {
    SymmetricKey::generate()
}

/// Encrypts `plaintext` with `key` (StackStorm's `symmetric_encrypt`).
pub fn encrypt(key: &SymmetricKey, plaintext: &str) -> String {
    key.encrypt(plaintext)
}

/// Decrypts `ciphertext` with `key` (StackStorm's `symmetric_decrypt`).
pub fn decrypt(key: &SymmetricKey, ciphertext: &str) -> Result<String, CryptoError> {
    key.decrypt(ciphertext)
}

/// keyczar's `Base64WSEncode`: URL-safe alphabet, no padding.
fn base64_ws_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// keyczar's `Base64WSDecode`: whitespace and padding ignored.
fn base64_ws_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect();
    URL_SAFE_NO_PAD.decode(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// StackStorm's test key `st2tests/conf/st2_kvstore_tests.crypto.key.json` (AES-128).
    const ST2_TEST_KEY: &str = r#"{"hmacKey": {"hmacKeyString": "685EWJ8U2U_c3Ulv9ibB6aa0Y9aYm-0bCwe2mqjLJuw", "size": 256}, "aesKeyString": "eKGFrfNEUhAgX0uofaU1wQ", "mode": "CBC", "size": 128}"#;

    /// `S3cret!Value` encrypted by StackStorm with that key (`st2api` kvps controller tests).
    const ST2_CIPHERTEXT: &str = "3030303030298D848B45A24EDCD1A82FAB4E831E3FCE6E60956817A48A180E4C040801EB30170DACF79498F30520236A629912C3584847098D";

    #[test]
    fn decrypts_stackstorm_vector() {
        let key = SymmetricKey::from_json(ST2_TEST_KEY).expect("key");
        assert_eq!(key.size(), 128);
        assert_eq!(
            key.decrypt(ST2_CIPHERTEXT).expect("decrypts"),
            "S3cret!Value"
        );
        assert_eq!(
            key.decrypt(&ST2_CIPHERTEXT.to_lowercase())
                .expect("lower-case hex"),
            "S3cret!Value"
        );
    }

    #[test]
    fn key_json_round_trips_byte_for_byte() {
        let key = SymmetricKey::from_json(ST2_TEST_KEY).expect("key");
        assert_eq!(key.to_json(), ST2_TEST_KEY);
        let generated = SymmetricKey::generate();
        let again = SymmetricKey::from_json(&generated.to_json()).expect("parses");
        assert_eq!(again.to_json(), generated.to_json());
        assert_eq!(generated.size(), 256);
    }

    #[test]
    fn same_iv_gives_stackstorm_layout() {
        let key = SymmetricKey::from_json(ST2_TEST_KEY).expect("key");
        // Re-encrypting with the vector's own IV must give the vector back exactly.
        let iv_hex = &ST2_CIPHERTEXT[HEADER_SIZE * 2..(HEADER_SIZE + BLOCK_SIZE) * 2];
        let iv: [u8; BLOCK_SIZE] = hex::decode(iv_hex).expect("hex").try_into().expect("16");
        assert_eq!(key.encrypt_with_iv("S3cret!Value", &iv), ST2_CIPHERTEXT);
    }

    #[test]
    fn rejects_bad_keys() {
        for (json, needle) in [
            ("nope", "not JSON"),
            (r#"{"mode": "CBC", "size": 256}"#, "hmacKey"),
            (
                r#"{"hmacKey": {"hmacKeyString": "AAAAAAAAAAAAAAAAAAAAAA", "size": 128}, "aesKeyString": "AAAAAAAAAAAAAAAAAAAAAA", "mode": "ECB", "size": 128}"#,
                "unsupported mode",
            ),
            (
                r#"{"hmacKey": {"hmacKeyString": "AAAAAAAAAAAAAAAAAAAAAA", "size": 128}, "aesKeyString": "AAAAAAAAAAAAAAAAAAAAAA", "mode": "CBC", "size": 256}"#,
                "size says 256",
            ),
            (
                r#"{"hmacKey": {"hmacKeyString": "AAAAAAAAAAAAAAAAAAAAAA", "size": 128}, "aesKeyString": "AAAAAAAAAAA", "mode": "CBC", "size": 64}"#,
                "unsafe key size",
            ),
        ] {
            let err = SymmetricKey::from_json(json).expect_err(json).to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }

    #[test]
    fn debug_hides_key_material() {
        let key = SymmetricKey::from_json(ST2_TEST_KEY).expect("key");
        let shown = format!("{key:?}");
        assert!(!shown.contains("685EWJ8U2U"), "{shown}");
        assert!(!shown.contains("eKGFrfNEUhAgX0uofaU1wQ"), "{shown}");
    }
}
