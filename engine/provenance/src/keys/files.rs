//! Key files: a key pair written to a private directory, and keys read back from
//! files that only their owner may read.

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

use super::error::{KeyError, MAX_KEY_FILE};
use super::public::PublicKey;
use super::signing::{KeySource, SigningKey};

/// File name of the private key written by [`write_key_pair`].
pub const PRIVATE_KEY_FILE: &str = "signing-key.pem";
/// File name of the public key written by [`write_key_pair`].
pub const PUBLIC_KEY_FILE: &str = "signing-key.pub";

/// Where [`write_key_pair`] put the two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairPaths {
    /// The PKCS#8 PEM private key, mode 0600 on Unix.
    pub private_key: PathBuf,
    /// The SubjectPublicKeyInfo PEM public key.
    pub public_key: PathBuf,
}

impl KeyPairPaths {
    /// The paths [`write_key_pair`] uses in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            private_key: dir.join(PRIVATE_KEY_FILE),
            public_key: dir.join(PUBLIC_KEY_FILE),
        }
    }
}

/// Writes `key` to `dir` as [`PRIVATE_KEY_FILE`] (created with mode 0600 on Unix, never
/// widened) and [`PUBLIC_KEY_FILE`], creating `dir` if needed (mode 0700 on Unix; an
/// existing directory keeps its mode). Refuses to overwrite an existing private key (the
/// error's source is `AlreadyExists`): replacing a signing key must be a deliberate act.
/// A key held by an ssh-agent cannot be written ([`KeyError::NotExportable`]).
pub fn write_key_pair(dir: &Path, key: &SigningKey) -> Result<KeyPairPaths, KeyError> {
    let paths = KeyPairPaths::in_dir(dir);
    let pem = key.to_pkcs8_pem()?;
    create_private_dir(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let io = |source| KeyError::Io {
        path: paths.private_key.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&paths.private_key).map_err(io)?;
    if let Err(error) = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // We created it, so it is ours to remove: a half-written key must not stay.
        drop(file);
        let _ = std::fs::remove_file(&paths.private_key);
        return Err(io(error));
    }
    std::fs::write(&paths.public_key, key.public_key().to_pem()).map_err(|source| {
        KeyError::Io {
            path: paths.public_key.clone(),
            source,
        }
    })?;
    Ok(paths)
}

/// Creates `dir` with mode 0700 (its missing parents with the usual mode); an existing
/// directory is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Reads a PKCS#8 PEM private key file; the key's [`source`](SigningKey::source) is
/// [`KeySource::File`] with the file's canonical path.
///
/// Symlinks are followed, but what they lead to must be a regular file of at most
/// [`MAX_KEY_FILE`] bytes (it is opened non-blocking, so a FIFO is refused rather than
/// waited on) and, on Unix, its mode must grant nothing to group or others
/// ([`KeyError::InsecurePermissions`], fixed by `chmod 600`), as ssh requires of its keys.
/// A file that is not a private key at all is a [`KeyError::PrivateKeyFormat`] whatever
/// its mode.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
            kind: file_kind(&metadata.file_type()),
        });
    }
    if metadata.len() > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
        });
    }
    // The file may grow after the check: read one byte more than allowed to notice.
    let mut pem = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut pem)
        .map_err(io)?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            size: pem.len() as u64,
        });
    }
    // Parsed before the mode is checked only so that a file that is no private key at
    // all (say, the public key) is named as such rather than given a chmod hint; a key
    // others can read is never used.
    let mut key = SigningKey::from_pkcs8_pem(&pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    key.source = KeySource::File(std::fs::canonicalize(path).map_err(io)?);
    Ok(key)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "device";
        }
    }
    if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Reads a SubjectPublicKeyInfo PEM public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    PublicKey::from_pem(&pem)
}

/// Reads the private key [`write_key_pair`] wrote to `dir`.
pub fn load_key_pair(dir: &Path) -> Result<SigningKey, KeyError> {
    load_signing_key(&KeyPairPaths::in_dir(dir).private_key)
}
