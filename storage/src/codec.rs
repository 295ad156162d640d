//! Encoding of every stored value: one format-version byte, then postcard.
//!
//! The version byte lets a later release read old values or refuse them clearly instead of
//! misreading them.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::StoreError;

/// The value format this build writes.
pub const FORMAT_VERSION: u8 = 1;

/// Encodes a value for storage.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_VERSION];
    out = postcard::to_extend(value, out)?;
    Ok(out)
}

/// Decodes a stored value, refusing unknown format versions.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "value format version {v}, this build reads {FORMAT_VERSION}"
        ))),
        None => Err(StoreError::Corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let v = (42u64, "x".to_string());
        let bytes = encode(&v).unwrap_or_default();
        assert_eq!(decode::<(u64, String)>(&bytes).ok(), Some(v));
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[9, 1]).is_err());
        assert!(decode::<(u64, String)>(&bytes[..2]).is_err());
    }
}
