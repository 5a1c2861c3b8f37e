//! Loose objects: `objects/xx/yyyy…`, a zlib stream of `<kind> <size>\0<content>`.

use std::io;
use std::path::{Path, PathBuf};

use flate2::{Decompress, FlushDecompress};

use crate::error::{Error, Result, io_err};
use crate::{ObjectId, ObjectKind, zlib};

/// The path of `id` under the object directory `dir`.
pub(crate) fn path(dir: &Path, id: &ObjectId) -> PathBuf {
    let hex = id.to_hex();
    let mut p = dir.join(&hex[..2]);
    p.push(&hex[2..]);
    p
}

/// Reads a loose object; `Ok(None)` if the file does not exist.
pub(crate) fn read(
    path: &Path,
    inflater: &mut Decompress,
    max_size: u64,
) -> Result<Option<(ObjectKind, Vec<u8>)>> {
    let compressed = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    decode(&compressed, inflater, max_size)
        .map(Some)
        .map_err(|msg| Error::Corrupt {
            path: path.to_owned(),
            msg,
        })
}

/// Decodes the content of a loose object file.
fn decode(
    compressed: &[u8],
    inflater: &mut Decompress,
    max_size: u64,
) -> Result<(ObjectKind, Vec<u8>), String> {
    // Inflate just the header first, to learn the size.
    let mut head = [0u8; 64];
    inflater.reset(true);
    inflater
        .decompress(compressed, &mut head, FlushDecompress::None)
        .map_err(|e| format!("zlib error: {e}"))?;
    let produced = usize::try_from(inflater.total_out())
        .unwrap_or(0)
        .min(head.len());
    let head = &head[..produced];
    let nul = head
        .iter()
        .position(|&b| b == 0)
        .ok_or("malformed object header")?;
    let header = &head[..nul];
    let space = header
        .iter()
        .position(|&b| b == b' ')
        .ok_or("malformed object header")?;
    let kind = ObjectKind::from_name(&header[..space]).ok_or_else(|| {
        format!(
            "unknown object type {:?}",
            String::from_utf8_lossy(&header[..space])
        )
    })?;
    let size: u64 = std::str::from_utf8(&header[space + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("malformed object size")?;
    if size > max_size {
        return Err(format!(
            "declared size {size} exceeds the limit of {max_size} bytes"
        ));
    }
    let size = usize::try_from(size).map_err(|_| "object too large for this platform")?;
    // The full stream is inflated again from the start: header plus content, so that the size and
    // the end of the stream are checked in one place. Headers are tiny, so this costs little.
    let mut out = Vec::new();
    zlib::inflate(inflater, compressed, nul + 1 + size, &mut out)?;
    out.drain(..nul + 1);
    Ok((kind, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_and_rejects() {
        let mut d = Decompress::new(true);
        let (k, data) = decode(&deflate(b"blob 5\0hello"), &mut d, 100).unwrap();
        assert_eq!((k, data.as_slice()), (ObjectKind::Blob, &b"hello"[..]));
        for bad in [
            &b"blob 6\0hello"[..],
            b"blob 4\0hello",
            b"blub 5\0hello",
            b"blob x\0hello",
            b"blob 5hello",
            b"blob 99999999999999999999\0hello",
            b"blob 1000\0hello",
        ] {
            assert!(decode(&deflate(bad), &mut d, 100).is_err());
        }
        assert!(decode(b"not zlib at all", &mut d, 100).is_err());
        let z = deflate(b"blob 5\0hello");
        for n in 0..z.len() {
            assert!(decode(&z[..n], &mut d, 100).is_err());
        }
    }
}
