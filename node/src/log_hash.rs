//! The node's log hash key: the secret under which national ids are pseudonymised in its log
//! ([`kartotek_domain::ids::log_hash`]).
//!
//! `log_hash_key_file` names a file with the key as 64 hex characters (`openssl rand -hex 32`).
//! Give every node of a cluster the same file, and a person's log lines carry the same hash
//! on every node. Without the setting the node keeps a key of its own in
//! `<data_dir>/log-hash.key`, made at first start (owner-only permissions): hashes are then
//! stable across this node's restarts but differ between nodes. Either way nobody without the
//! key can turn a hash back into a number, which an unkeyed hash of the ~10^8 valid numbers
//! would allow.

use std::io::Write;
use std::path::{Path, PathBuf};

use kartotek_domain::ids::log_hash::{LOG_HASH_KEY_BYTES, set_log_hash_key};

use crate::config::NodeConfig;

/// The file of a node's own key, in its data directory.
pub const OWN_KEY_FILE: &str = "log-hash.key";
/// Largest key file read, bytes (64 hex characters and some white space).
const KEY_FILE_BYTES_MAX: u64 = 1024;

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
#[error("log hash key {path}: {reason}")]
pub struct LogHashKeyError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Loads (or, without `log_hash_key_file`, makes once) the key of `config` and sets it for
/// this process. Returns the file it came from.
pub fn install(config: &NodeConfig) -> Result<PathBuf, LogHashKeyError> {
    let (path, key) = match &config.log_hash_key_file {
        Some(path) => (path.clone(), read_key(path)?),
        None => {
            let path = config.data_dir.join(OWN_KEY_FILE);
            let key = if path.exists() {
                read_key(&path)?
            } else {
                make_key(&path)?
            };
            (path, key)
        }
    };
    if !set_log_hash_key(key) {
        // Only in a process that runs several nodes (tests): the first key stays.
        tracing::warn!(path = %path.display(), "another log hash key was set first in this process; it stays");
    }
    Ok(path)
}

fn error(path: &Path, reason: impl Into<String>) -> LogHashKeyError {
    LogHashKeyError {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a key file: 64 hex characters.
pub fn read_key(path: &Path) -> Result<[u8; LOG_HASH_KEY_BYTES], LogHashKeyError> {
    let len = std::fs::metadata(path)
        .map_err(|e| error(path, e.to_string()))?
        .len();
    if len > KEY_FILE_BYTES_MAX {
        return Err(error(
            path,
            format!("{len} bytes, at most {KEY_FILE_BYTES_MAX}"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(path, e.to_string()))?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| error(path, "must be 64 hex characters (openssl rand -hex 32)"))?;
    <[u8; LOG_HASH_KEY_BYTES]>::try_from(bytes.as_slice())
        .map_err(|_| error(path, "must be 64 hex characters (openssl rand -hex 32)"))
}

/// Makes a random key and writes it to `path` (owner-only, fsynced).
fn make_key(path: &Path) -> Result<[u8; LOG_HASH_KEY_BYTES], LogHashKeyError> {
    let key: [u8; LOG_HASH_KEY_BYTES] = rand::random();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| error(path, e.to_string()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| error(path, e.to_string()))?;
    file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| error(path, e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_makes_its_key_once_and_reads_a_configured_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(OWN_KEY_FILE);
        let made = make_key(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_key(&path).ok(), Some(made));
        assert!(
            make_key(&path).is_err(),
            "an existing key is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(31)] {
            let p = dir.path().join("bad.key");
            std::fs::write(&p, bad).unwrap_or_else(|e| panic!("{e}"));
            let e = read_key(&p)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} taken"));
            assert!(e.to_string().contains("64 hex"), "{e}");
        }
    }
}
