//! The keyed pseudonym of a national id in logs ([`NationalId::log_hash`](super::NationalId::log_hash)).
//!
//! An unkeyed hash of a national id is no pseudonym: there are only about 10^8 valid numbers,
//! so anyone holding a log line finds the number by hashing them all. The log hash is an
//! HMAC-SHA256 under a secret key instead, set once per process with [`set_log_hash_key`]
//! (the node does it at start, from `log.hash_key_file`: the same file on every node makes
//! the hashes of one person the same in every node's log). Whoever has the key can still test
//! numbers, so the key is as secret as the data; without it the hashes reveal nothing.
//!
//! Until a key is set, [`NationalId::log_hash`](super::NationalId::log_hash) gives
//! [`NO_LOG_HASH_KEY`] rather than anything derived from the number.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a log hash key.
pub const LOG_HASH_KEY_BYTES: usize = 32;
/// What a log hash is before a key is set.
pub const NO_LOG_HASH_KEY: &str = "no-log-hash-key";
/// Hex characters of a log hash (64 bits).
pub(super) const LOG_HASH_LEN: usize = 16;

static KEY: OnceLock<[u8; LOG_HASH_KEY_BYTES]> = OnceLock::new();

/// Sets this process's log hash key. The first key set stays: `false` when another key was
/// set before (the hashes already logged must keep meaning the same person).
pub fn set_log_hash_key(key: [u8; LOG_HASH_KEY_BYTES]) -> bool {
    *KEY.get_or_init(|| key) == key
}

/// Whether a log hash key is set.
pub fn log_hash_key_is_set() -> bool {
    KEY.get().is_some()
}

/// The log hash of `id` (the digits of a national id) under `key`.
pub(super) fn keyed_hash(key: &[u8; LOG_HASH_KEY_BYTES], id: &str) -> String {
    // HMAC takes a key of any length; a 32-byte key never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return NO_LOG_HASH_KEY.to_owned();
    };
    mac.update(id.as_bytes());
    let mut hash = hex::encode(mac.finalize().into_bytes());
    hash.truncate(LOG_HASH_LEN);
    hash
}

/// The log hash of `id` under this process's key.
pub(super) fn log_hash(id: &str) -> String {
    match KEY.get() {
        Some(key) => keyed_hash(key, id),
        None => NO_LOG_HASH_KEY.to_owned(),
    }
}
