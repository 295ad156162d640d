//! The snapshot file format: a self-describing, checksummed dump of the `sm` column family.
//!
//! ```text
//! magic "KTSNAP01"
//! u32 LE meta length, meta (codec-encoded openraft SnapshotMeta)
//! frames: u32 LE key length, key, u32 LE value length, value
//! end:    u32 LE 0xFFFF_FFFF, u64 LE frame count, SHA-256 of every byte before the hash
//! ```
//!
//! The file is built from a RocksDB snapshot (a consistent view), written to a temporary name,
//! fsynced and renamed into place. openraft streams it to followers in bounded chunks, so a
//! snapshot never has to fit in memory. Readers verify lengths against named maxima and the
//! checksum, so a truncated or corrupted transfer is refused, never installed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::codec::{decode, encode};
use crate::error::StoreError;
use crate::types::SnapshotMeta;

/// File magic, including the format version.
pub const MAGIC: &[u8; 8] = b"KTSNAP01";
/// Largest key a snapshot may contain.
pub const KEY_BYTES_MAX: u32 = 64 << 10;
/// Largest value a snapshot may contain.
pub const VALUE_BYTES_MAX: u32 = 64 << 20;
/// Largest encoded snapshot meta.
pub const META_BYTES_MAX: u32 = 1 << 20;
const END_MARK: u32 = u32::MAX;

/// Writes a snapshot file.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    hasher: Sha256,
    frames: u64,
}

impl SnapshotWriter {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, meta: &SnapshotMeta) -> Result<Self, StoreError> {
        let file = File::create(path)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            frames: 0,
        };
        w.put(MAGIC)?;
        let meta = encode(meta)?;
        w.put(&len32(meta.len())?.to_le_bytes())?;
        w.put(&meta)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)?;
        Ok(())
    }

    /// Appends one key/value frame.
    pub fn frame(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let k = len32(key.len())?;
        let v = len32(value.len())?;
        if k > KEY_BYTES_MAX || v > VALUE_BYTES_MAX {
            return Err(StoreError::Corrupt(format!(
                "frame too large: key {k} value {v}"
            )));
        }
        self.put(&k.to_le_bytes())?;
        self.put(key)?;
        self.put(&v.to_le_bytes())?;
        self.put(value)?;
        self.frames += 1;
        Ok(())
    }

    /// Writes the trailer and fsyncs the file. Returns the number of frames.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.put(&END_MARK.to_le_bytes())?;
        let frames = self.frames;
        self.put(&frames.to_le_bytes())?;
        let hash = self.hasher.finalize();
        self.out.write_all(&hash)?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?;
        file.sync_all()?;
        Ok(frames)
    }
}

fn len32(n: usize) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("length {n} exceeds u32")))
}

/// One key/value pair of the `sm` family.
pub type Frame = (Vec<u8>, Vec<u8>);

/// Reads and verifies a snapshot file, frame by frame.
pub struct SnapshotReader<R: Read> {
    input: R,
    hasher: Sha256,
    meta: SnapshotMeta,
    frames: u64,
    done: bool,
}

impl SnapshotReader<BufReader<File>> {
    /// Opens a snapshot file and reads its header.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        SnapshotReader::new(BufReader::with_capacity(1 << 20, File::open(path)?))
    }
}

impl<R: Read> SnapshotReader<R> {
    /// Reads the header from `input`.
    pub fn new(input: R) -> Result<Self, StoreError> {
        let mut r = SnapshotReader {
            input,
            hasher: Sha256::new(),
            meta: SnapshotMeta::default(),
            frames: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        r.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(StoreError::Corrupt(
                "not a Kartotek snapshot (bad magic)".into(),
            ));
        }
        let meta_len = r.u32()?;
        if meta_len > META_BYTES_MAX {
            return Err(StoreError::Corrupt(format!(
                "snapshot meta of {meta_len} bytes"
            )));
        }
        let meta = r.bytes(meta_len)?;
        r.meta = decode(&meta)?;
        Ok(r)
    }

    /// The snapshot's metadata (from the header).
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The input, positioned after the checksum once [`SnapshotReader::next_frame`] has
    /// returned `None`.
    pub fn into_inner(self) -> R {
        self.input
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt("snapshot truncated".into())
            } else {
                StoreError::Io(e)
            }
        })?;
        self.hasher.update(&*buf);
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self, n: u32) -> Result<Vec<u8>, StoreError> {
        let mut v = vec![0u8; n as usize];
        self.take(&mut v)?;
        Ok(v)
    }

    /// The next key/value frame, or `None` after the verified end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let klen = self.u32()?;
        if klen == END_MARK {
            let mut count = [0u8; 8];
            self.take(&mut count)?;
            let expected_hash = self.hasher.clone().finalize();
            let mut hash = [0u8; 32];
            self.input.read_exact(&mut hash).map_err(|_| {
                StoreError::Corrupt("snapshot truncated before its checksum".into())
            })?;
            if hash[..] != expected_hash[..] {
                return Err(StoreError::Corrupt("snapshot checksum mismatch".into()));
            }
            if u64::from_le_bytes(count) != self.frames {
                return Err(StoreError::Corrupt("snapshot frame count mismatch".into()));
            }
            self.done = true;
            return Ok(None);
        }
        if klen > KEY_BYTES_MAX {
            return Err(StoreError::Corrupt(format!("snapshot key of {klen} bytes")));
        }
        let key = self.bytes(klen)?;
        let vlen = self.u32()?;
        if vlen > VALUE_BYTES_MAX {
            return Err(StoreError::Corrupt(format!(
                "snapshot value of {vlen} bytes"
            )));
        }
        let value = self.bytes(vlen)?;
        self.frames += 1;
        Ok(Some((key, value)))
    }
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> Result<SnapshotMeta, StoreError> {
    Ok(SnapshotReader::open(path)?.meta().clone())
}

/// Copies a snapshot from `input` to `dest` while verifying every frame and the checksum;
/// fsyncs `dest`. Returns the metadata.
pub fn copy_verified<R: Read>(input: R, dest: &Path) -> Result<SnapshotMeta, StoreError> {
    struct Tee<R, W> {
        input: R,
        out: W,
    }
    impl<R: Read, W: Write> Read for Tee<R, W> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.input.read(buf)?;
            self.out.write_all(&buf[..n])?;
            Ok(n)
        }
    }
    let out = BufWriter::with_capacity(1 << 20, File::create(dest)?);
    let mut reader = SnapshotReader::new(Tee { input, out })?;
    while reader.next_frame()?.is_some() {}
    let meta = reader.meta.clone();
    let file = reader
        .input
        .out
        .into_inner()
        .map_err(|e| StoreError::Io(e.into_error()))?;
    file.sync_all()?;
    Ok(meta)
}

/// Fsyncs a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("s.snap");
        let meta = SnapshotMeta::default();
        let mut w = SnapshotWriter::create(&path, &meta).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..100u32 {
            w.frame(&i.to_be_bytes(), &vec![7u8; i as usize])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(w.finish().ok(), Some(100));
        path
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = sample(dir.path());
        let mut r = SnapshotReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut n = 0u32;
        while let Some((k, v)) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
            assert_eq!(k, n.to_be_bytes());
            assert_eq!(v.len(), n as usize);
            n += 1;
        }
        assert_eq!(n, 100);
        let copy = dir.path().join("copy.snap");
        assert!(copy_verified(File::open(&path).unwrap_or_else(|e| panic!("{e}")), &copy).is_ok());
        assert_eq!(std::fs::read(&copy).ok(), std::fs::read(&path).ok());
    }

    #[test]
    fn corruption_and_truncation_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap_or_default();
        for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            let r = copy_verified(&bytes[..cut], &dir.path().join("t.snap"));
            assert!(r.is_err(), "truncated at {cut} accepted");
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        assert!(copy_verified(&flipped[..], &dir.path().join("f.snap")).is_err());
    }
}
