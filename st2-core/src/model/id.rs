//! Document ids shaped like MongoDB ObjectIds (24 hex chars, time-ordered), so StackStorm clients
//! that sort or parse ids keep working and ids sort by creation time.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A new 24-hex-char id: 4 bytes of Unix seconds, 5 random bytes, 3 bytes of a process counter.
pub fn new_id() -> String {
    let secs = chrono::Utc::now().timestamp() as u32;
    let rnd = uuid::Uuid::new_v4();
    let r = rnd.as_bytes();
    let c = COUNTER.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    format!(
        "{:08x}{:02x}{:02x}{:02x}{:02x}{:02x}{:06x}",
        secs, r[0], r[1], r[2], r[3], r[4], c
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_and_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
