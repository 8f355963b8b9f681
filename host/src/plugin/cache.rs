//! The on-disk compile cache (`[plugins] cache-dir`): one artifact per
//! component and engine, so a restart deserializes instead of compiling
//! (a componentize-py guest takes ~10 s of Cranelift, its artifact
//! loads in milliseconds).
//!
//! # Why the bytes are checked before wasmtime sees them
//!
//! `Component::deserialize` is `unsafe`: wasmtime trusts an artifact to be
//! code it generated, and a damaged one can run arbitrary machine code.
//! Its own header check catches a different wasmtime version or engine
//! configuration, not a torn or flipped byte. So:
//!
//! - **Who can write**: the directory is created `0700` and must belong to
//!   the gateway's user; an existing one that belongs to someone else, or
//!   that is a symlink, is not used (the gateway compiles in memory and
//!   says why), and a looser mode on our own directory is tightened to
//!   `0700`. Whoever can write it could equally replace the binary, so it
//!   is trusted exactly as far as the gateway's own files are.
//! - **What is checked**: each file is `MAGIC`, the SHA-256 of the
//!   payload, then the payload (wasmtime's serialized component). The
//!   whole file is read, hashed and compared before the very same bytes
//!   are deserialized: a truncated, partly written or bit-flipped file
//!   fails the check, is removed, and the component is compiled again.
//!   Writes go to a temporary file renamed into place.
//! - **Key**: the file name holds the component's SHA-256 and wasmtime's
//!   `precompile_compatibility_hash` (wasmtime version, target, every
//!   setting that shapes code: fuel, memory reservation, async ABI), so a
//!   different engine never even opens another engine's artifact.
//!
//! Nothing is evicted: each version of each plugin leaves one artifact
//! (about 3-4x its `.wasm`). Deleting the directory is always safe.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// First bytes of every cache file (format version in the last byte).
const MAGIC: &[u8; 8] = b"SLUICEC1";
const HEADER: usize = MAGIC.len() + 32;

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheDirError {
    #[error("creating {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} belongs to uid {1}, not to the gateway's user (uid {2})")]
    Owner(PathBuf, u32, u32),
    #[error("setting {0} to mode 0700: {1}")]
    Chmod(PathBuf, std::io::Error),
}

/// A cache directory checked by [`DiskCache::open`].
#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// Create `dir` (mode `0700`) or check an existing one: a directory,
    /// not a symlink, owned by this process's user, mode `0700`.
    pub fn open(dir: &Path) -> Result<Self, CacheDirError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| CacheDirError::Create(dir.to_path_buf(), e))?;
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| CacheDirError::Create(dir.to_path_buf(), e))?;
        if !meta.is_dir() {
            return Err(CacheDirError::NotADirectory(dir.to_path_buf()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me {
                return Err(CacheDirError::Owner(dir.to_path_buf(), meta.uid(), me));
            }
            if meta.mode() & 0o777 != 0o700 {
                tracing::warn!(dir = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "compile cache directory was not private; setting it to 0700");
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| CacheDirError::Chmod(dir.to_path_buf(), e))?;
            }
        }
        Ok(DiskCache {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact of component `sha` for `engine`.
    pub fn path(&self, engine: &Engine, sha: &[u8; 32]) -> PathBuf {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir
            .join(format!("{}-{:016x}.cwasm", hex::encode(sha), h.finish()))
    }

    /// The cached component `sha`, if a valid artifact is there. A file
    /// that fails the checksum or wasmtime's own checks is removed (so
    /// the caller's recompile replaces it) and `None` returned.
    pub fn load(&self, engine: &Engine, sha: &[u8; 32]) -> Option<Component> {
        let path = self.path(engine, sha);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "compile cache entry unreadable, compiling: {e}");
                return None;
            }
        };
        let loaded = match verified_payload(&bytes) {
            // SAFETY: `payload` is, byte for byte, what `store` wrote from
            // `Component::serialize` on an engine with this compatibility
            // hash (file name): its SHA-256 matched the one written beside
            // it, in a directory only the gateway's user can write (`open`).
            // wasmtime re-checks version and configuration in the header.
            Ok(payload) => {
                unsafe { Component::deserialize(engine, payload) }.map_err(|e| format!("{e:#}"))
            }
            Err(why) => Err(why.to_owned()),
        };
        match loaded {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(path = %path.display(), "discarding invalid compile cache entry ({why}), compiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Write `component`'s artifact (temporary file, then rename).
    pub fn store(
        &self,
        engine: &Engine,
        sha: &[u8; 32],
        component: &Component,
    ) -> std::io::Result<()> {
        let path = self.path(engine, sha);
        let payload = component.serialize().map_err(std::io::Error::other)?;
        let digest = Sha256::digest(&payload);
        // Unique per writer: two runtimes in one process may store the
        // same artifact at once.
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        {
            let mut f = tmp.as_file();
            f.write_all(MAGIC)?;
            f.write_all(&digest)?;
            f.write_all(&payload)?;
            f.sync_all()?;
        }
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The payload of a cache file whose checksum matches.
fn verified_payload(bytes: &[u8]) -> Result<&[u8], &'static str> {
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a sluice cache file");
    }
    let (want, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != want {
        return Err("checksum mismatch: truncated or corrupt");
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_catches_truncation_and_flipped_bytes() {
        let payload = b"not really an artifact".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&payload));
        file.extend_from_slice(&payload);
        assert_eq!(verified_payload(&file).unwrap(), payload);
        assert!(verified_payload(&file[..file.len() - 1]).is_err());
        assert!(verified_payload(&file[..HEADER - 1]).is_err());
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(verified_payload(&flipped).is_err());
        let mut other = file.clone();
        other[7] = b'9';
        assert!(verified_payload(&other).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_created_private_and_tightened_when_loose() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b/cache");
        DiskCache::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        DiskCache::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        let file = base.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(DiskCache::open(&file).is_err());
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            DiskCache::open(&link),
            Err(CacheDirError::NotADirectory(_))
        ));
    }
}
