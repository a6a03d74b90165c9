//! SHA-256 as lowercase hex: the one way lastgood fingerprints content (config
//! snapshots, migration scripts, backups, the audit chain).
//!
//! A leaf module on purpose: the ledger, the database code and the journal all need
//! it, and none of them should import another to get it.

use sha2::{Digest, Sha256};

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 over several parts in order, as if concatenated.
pub fn sha256_parts(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize())
}

/// An incremental SHA-256, for streams too large to hold (backups).
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digests() {
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(super::sha256_parts(&[b"a", b"bc"]), super::sha256_hex(b"abc"));
        let mut h = super::Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), super::sha256_hex(b"abc"));
    }
}
