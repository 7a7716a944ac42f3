//! Document ids shaped like MongoDB ObjectIds (24 hex chars, time-ordered), so StackStorm clients
//! that sort or parse ids keep working and ids sort by creation time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// 5 random bytes chosen once per process (MongoDB's "process unique" part): ids made by one
/// process sort in creation order even within one second.
fn process_unique() -> &'static [u8; 5] {
    static UNIQUE: OnceLock<[u8; 5]> = OnceLock::new();
    UNIQUE.get_or_init(|| {
        let u = uuid::Uuid::new_v4();
        let b = u.as_bytes();
        [b[0], b[1], b[2], b[3], b[4]]
    })
}

/// A new 24-hex-char id: 4 bytes of Unix seconds, 5 bytes unique to this process, 3 bytes of
/// a process counter.
pub fn new_id() -> String {
    let secs = chrono::Utc::now().timestamp() as u32;
    let r = process_unique();
    let c = COUNTER.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    format!(
        "{:08x}{:02x}{:02x}{:02x}{:02x}{:02x}{:06x}",
        secs, r[0], r[1], r[2], r[3], r[4], c
    )
}

/// An id derived from `base` (an id) and `salt`, the same every time it is asked for: what a
/// consumer creates for a message it may receive twice gets this id, so the second delivery finds
/// the first one's document instead of creating another. It keeps `base`'s 4 bytes of seconds
/// (when `base` is an id) so derived ids still sort by time; the other 8 bytes are a SHA-256 of
/// both parts.
pub fn derived_id(base: &str, salt: &str) -> String {
    use sha2::{Digest, Sha256};
    let seconds = if base.len() == 24 && base.chars().all(|c| c.is_ascii_hexdigit()) {
        base[..8].to_ascii_lowercase()
    } else {
        format!("{:08x}", chrono::Utc::now().timestamp() as u32)
    };
    let mut hash = Sha256::new();
    hash.update(base.as_bytes());
    hash.update([0]);
    hash.update(salt.as_bytes());
    let digest = hash.finalize();
    let tail: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{seconds}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_and_keep_the_time() {
        let base = "65f0a1b2c3d4e5f601234567";
        let a = derived_id(base, "execution:r1");
        assert_eq!(a, derived_id(base, "execution:r1"), "same parts, same id");
        assert_ne!(a, derived_id(base, "execution:r2"));
        assert_ne!(a, derived_id("65f0a1b2c3d4e5f601234568", "execution:r1"));
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(&a[..8], &base[..8], "keeps the base's seconds");
    }

    #[test]
    fn ids_are_24_hex_and_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_of_one_process_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
