//! Pack index v2 files, pack files (v2/v3) and delta application.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::error::{Error, Result, io_err};
use crate::oid::Prefix;
use crate::{ObjectId, ObjectKind};

const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
/// Magic (4) + version (4) + fanout (256 * 4).
const IDX_HEADER: usize = 8 + 256 * 4;
/// Size of the pack header: `PACK`, version, object count.
const PACK_HEADER: u64 = 12;
/// Size of a SHA-1 trailer.
const TRAILER: u64 = 20;

/// Reads a big-endian u32 at `pos`; 0 if out of range (callers validate lengths beforehand).
fn be32(data: &[u8], pos: usize) -> u32 {
    match data.get(pos..pos.saturating_add(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// A version 2 pack index (`*.idx`), held in memory.
pub(crate) struct PackIndex {
    path: PathBuf,
    data: Vec<u8>,
    count: usize,
}

impl PackIndex {
    /// Reads and validates an index: magic, version, fanout, size and its SHA-1 checksum.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(io_err(path))?;
        Self::from_bytes(path.to_owned(), data)
    }

    pub(crate) fn from_bytes(path: PathBuf, data: Vec<u8>) -> Result<Self> {
        let corrupt = |msg: String| Error::Corrupt {
            path: path.clone(),
            msg,
        };
        if data.len() < IDX_HEADER + 40 {
            return Err(corrupt(format!(
                "pack index too short ({} bytes)",
                data.len()
            )));
        }
        if data.get(..4) != Some(&IDX_MAGIC[..]) {
            return Err(corrupt(
                "not a version 2 pack index (bad magic; version 1 indexes are not supported)"
                    .into(),
            ));
        }
        let version = be32(&data, 4);
        if version != 2 {
            return Err(corrupt(format!("unsupported pack index version {version}")));
        }
        let mut prev = 0;
        for b in 0..256 {
            let v = be32(&data, 8 + 4 * b);
            if v < prev {
                return Err(corrupt(format!(
                    "fanout table is not monotonic at entry {b}"
                )));
            }
            prev = v;
        }
        let count = usize::try_from(prev).map_err(|_| corrupt("too many objects".into()))?;
        let min_len = count
            .checked_mul(20 + 4 + 4)
            .and_then(|n| n.checked_add(IDX_HEADER + 40))
            .ok_or_else(|| corrupt("object count overflows".into()))?;
        if data.len() < min_len || !(data.len() - min_len).is_multiple_of(8) {
            return Err(corrupt(format!(
                "file size {} does not match its object count {count}",
                data.len()
            )));
        }
        let (body, sum) = data.split_at(data.len() - 20);
        if Sha1::digest(body).as_slice() != sum {
            return Err(corrupt("pack index checksum mismatch".into()));
        }
        for i in 1..count {
            if data[IDX_HEADER + (i - 1) * 20..IDX_HEADER + i * 20]
                >= data[IDX_HEADER + i * 20..IDX_HEADER + (i + 1) * 20]
            {
                return Err(corrupt(format!("object ids are not sorted at entry {i}")));
            }
        }
        Ok(Self { path, data, count })
    }

    /// Number of objects.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The checksum of the pack file this index describes.
    pub(crate) fn pack_checksum(&self) -> &[u8] {
        let len = self.data.len();
        &self.data[len - 40..len - 20]
    }

    fn fanout(&self, byte: usize) -> usize {
        be32(&self.data, 8 + 4 * byte) as usize
    }

    /// The id of entry `i` (`i < count`).
    fn id_at(&self, i: usize) -> &[u8] {
        let start = IDX_HEADER + i * 20;
        self.data.get(start..start + 20).unwrap_or_default()
    }

    /// The position of `id` in the index.
    pub(crate) fn lookup(&self, id: &ObjectId) -> Option<usize> {
        let first = usize::from(id.as_bytes()[0]);
        let mut lo = if first == 0 {
            0
        } else {
            self.fanout(first - 1)
        };
        let mut hi = self.fanout(first);
        let want = &id.as_bytes()[..];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_at(mid).cmp(want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The pack offset of entry `i`, following the large-offset table when needed.
    pub(crate) fn offset_at(&self, i: usize) -> Result<u64> {
        let small = be32(&self.data, IDX_HEADER + self.count * 24 + i * 4);
        if small & 0x8000_0000 == 0 {
            return Ok(u64::from(small));
        }
        let j = (small & 0x7fff_ffff) as usize;
        let pos = IDX_HEADER + self.count * 28 + j * 8;
        let end = self.data.len() - 40;
        match self.data.get(pos..pos + 8) {
            Some(&[a, b, c, d, e, f, g, h]) if pos + 8 <= end => {
                Ok(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
            }
            _ => Err(Error::Corrupt {
                path: self.path.clone(),
                msg: format!("large offset index {j} of entry {i} is out of range"),
            }),
        }
    }

    /// Appends the ids that start with `prefix` (which has at least two digits).
    pub(crate) fn find_prefix(&self, prefix: &Prefix, out: &mut Vec<ObjectId>) {
        let first = usize::from(prefix.first_byte());
        let mut lo = if first == 0 {
            0
        } else {
            self.fanout(first - 1)
        };
        let hi = self.fanout(first);
        // Lower bound of the zero-padded prefix.
        let low = &prefix.lowest()[..];
        let mut top = hi;
        while lo < top {
            let mid = lo + (top - lo) / 2;
            if self.id_at(mid) < low {
                lo = mid + 1;
            } else {
                top = mid;
            }
        }
        for i in lo..hi {
            let id = self.id_at(i);
            if !prefix.matches(id) {
                break;
            }
            out.extend(ObjectId::from_slice(id));
        }
    }
}

/// How a pack's bytes are accessed.
enum PackData {
    /// The whole file, read once.
    Memory(Vec<u8>),
    /// Positioned reads of one entry at a time; `ends` maps sorted entry offsets to their ends.
    File {
        file: RefCell<File>,
        sorted_offsets: OnceCell<Vec<u64>>,
    },
}

/// A pack file with its index.
pub(crate) struct Pack {
    pub(crate) idx: PackIndex,
    path: PathBuf,
    len: u64,
    data: PackData,
}

/// Where a pack entry's delta base is.
pub(crate) enum Base {
    /// Not a delta: a whole object of this kind.
    Whole(ObjectKind),
    /// OFS_DELTA: the base is at this offset in the same pack.
    Offset(u64),
    /// REF_DELTA: the base is this object, anywhere.
    Id(ObjectId),
}

/// A parsed pack entry header.
pub(crate) struct EntryHeader {
    /// Inflated size of the entry's data (the object, or the delta).
    pub(crate) size: u64,
    /// Length of the header; the zlib stream starts here.
    pub(crate) len: usize,
    pub(crate) base: Base,
}

impl Pack {
    /// Opens `path` (a `.pack`) described by `idx`, checking its header and that its trailing
    /// checksum is the one the index records. Packs up to `whole_file_limit` bytes are read into
    /// memory at once; larger ones are read entry by entry.
    pub(crate) fn open(path: &Path, idx: PackIndex, whole_file_limit: u64) -> Result<Self> {
        let corrupt = |msg: String| Error::Corrupt {
            path: path.to_owned(),
            msg,
        };
        let mut file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < PACK_HEADER + TRAILER {
            return Err(corrupt(format!("pack too short ({len} bytes)")));
        }
        let mut header = [0u8; 12];
        let mut trailer = [0u8; 20];
        let data = if len <= whole_file_limit {
            let mut all = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut all).map_err(io_err(path))?;
            if all.len() as u64 != len {
                return Err(corrupt("pack changed size while being read".into()));
            }
            header.copy_from_slice(&all[..12]);
            trailer.copy_from_slice(&all[all.len() - 20..]);
            PackData::Memory(all)
        } else {
            read_at(&mut file, 0, &mut header).map_err(io_err(path))?;
            read_at(&mut file, len - TRAILER, &mut trailer).map_err(io_err(path))?;
            PackData::File {
                file: RefCell::new(file),
                sorted_offsets: OnceCell::new(),
            }
        };
        if &header[..4] != b"PACK" {
            return Err(corrupt("not a pack file (bad signature)".into()));
        }
        let version = be32(&header, 4);
        if version != 2 && version != 3 {
            return Err(corrupt(format!("unsupported pack version {version}")));
        }
        let count = be32(&header, 8) as usize;
        if count != idx.count() {
            return Err(corrupt(format!(
                "pack has {count} objects but its index lists {}",
                idx.count()
            )));
        }
        if trailer[..] != *idx.pack_checksum() {
            return Err(corrupt("pack checksum does not match its index".into()));
        }
        Ok(Self {
            idx,
            path: path.to_owned(),
            len,
            data,
        })
    }

    /// An error about the entry at `offset`.
    pub(crate) fn corrupt(&self, offset: u64, msg: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            msg: format!("entry at offset {offset}: {msg}"),
        }
    }

    /// The bytes of the entry at `offset`: its header and zlib stream (possibly followed by more).
    pub(crate) fn entry(&self, offset: u64) -> Result<Cow<'_, [u8]>> {
        let data_end = self.len - TRAILER;
        if offset < PACK_HEADER || offset >= data_end {
            return Err(self.corrupt(offset, "offset outside the pack"));
        }
        match &self.data {
            PackData::Memory(all) => {
                // Both bounds were checked against the file length above.
                Ok(Cow::Borrowed(&all[offset as usize..data_end as usize]))
            }
            PackData::File {
                file,
                sorted_offsets,
            } => {
                let sorted = sorted_offsets.get_or_init(|| {
                    let mut v: Vec<u64> = (0..self.idx.count())
                        .filter_map(|i| self.idx.offset_at(i).ok())
                        .collect();
                    v.sort_unstable();
                    v
                });
                let end = match sorted.binary_search(&offset) {
                    Ok(i) => sorted.get(i + 1).copied().unwrap_or(data_end),
                    Err(_) => return Err(self.corrupt(offset, "no object starts at this offset")),
                };
                let end = end.min(data_end);
                let len = usize::try_from(end - offset)
                    .map_err(|_| self.corrupt(offset, "entry too large"))?;
                let mut buf = vec![0u8; len];
                read_at(&mut file.borrow_mut(), offset, &mut buf).map_err(io_err(&self.path))?;
                Ok(Cow::Owned(buf))
            }
        }
    }
}

/// Fills `buf` from `file` at `offset`.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// Parses the entry header at the start of `buf`; `offset` is the entry's position in the pack.
pub(crate) fn parse_entry_header(buf: &[u8], offset: u64) -> Result<EntryHeader, String> {
    let mut pos = 0;
    let mut next = || {
        let b = buf.get(pos).copied().ok_or("truncated entry header");
        pos += 1;
        b
    };
    let mut c = next()?;
    let kind = (c >> 4) & 7;
    let mut size = u64::from(c & 15);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = next()?;
        if shift > 57 {
            return Err("entry size overflows".into());
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    let base = match kind {
        6 => {
            c = next()?;
            let mut rel = u64::from(c & 0x7f);
            while c & 0x80 != 0 {
                c = next()?;
                rel = rel
                    .checked_add(1)
                    .and_then(|r| r.checked_mul(128))
                    .map(|r| r | u64::from(c & 0x7f))
                    .ok_or("delta base offset overflows")?;
            }
            match offset.checked_sub(rel) {
                Some(b) if rel != 0 && b >= PACK_HEADER => Base::Offset(b),
                _ => return Err(format!("delta base offset {rel} points outside the pack")),
            }
        }
        7 => {
            let id = buf
                .get(pos..pos + 20)
                .and_then(ObjectId::from_slice)
                .ok_or("truncated delta base id")?;
            pos += 20;
            Base::Id(id)
        }
        t => Base::Whole(ObjectKind::from_pack_type(t).ok_or(format!("invalid object type {t}"))?),
    };
    Ok(EntryHeader {
        size,
        len: pos,
        base,
    })
}

/// Reads a delta size varint (7 bits a byte, little-endian).
fn delta_varint(delta: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let c = *delta.get(*pos).ok_or("truncated delta header")?;
        *pos += 1;
        if shift > 63 {
            return Err("delta header size overflows".into());
        }
        value |= u64::from(c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Applies a git delta to `base`. The result may not exceed `max_size` bytes.
pub(crate) fn apply_delta(base: &[u8], delta: &[u8], max_size: u64) -> Result<Vec<u8>, String> {
    let mut pos = 0;
    let base_size = delta_varint(delta, &mut pos)?;
    if base_size != base.len() as u64 {
        return Err(format!(
            "delta expects a base of {base_size} bytes, but the base has {}",
            base.len()
        ));
    }
    let result_size = delta_varint(delta, &mut pos)?;
    if result_size > max_size {
        return Err(format!(
            "delta result size {result_size} exceeds the limit of {max_size} bytes"
        ));
    }
    let result_size = usize::try_from(result_size).map_err(|_| "delta result too large")?;
    let mut out = Vec::with_capacity(result_size.min(crate::zlib::PREALLOC_LIMIT));
    while let Some(&op) = delta.get(pos) {
        pos += 1;
        let chunk = if op & 0x80 != 0 {
            let mut offset = 0usize;
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    let b = *delta.get(pos).ok_or("truncated copy instruction")?;
                    pos += 1;
                    offset |= usize::from(b) << (8 * i);
                }
            }
            let mut size = 0usize;
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    let b = *delta.get(pos).ok_or("truncated copy instruction")?;
                    pos += 1;
                    size |= usize::from(b) << (8 * i);
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            offset
                .checked_add(size)
                .and_then(|end| base.get(offset..end))
                .ok_or_else(|| {
                    format!(
                        "delta copies {size} bytes from offset {offset}, outside its {}-byte base",
                        base.len()
                    )
                })?
        } else if op != 0 {
            let n = usize::from(op);
            let data = delta
                .get(pos..pos + n)
                .ok_or("truncated insert instruction")?;
            pos += n;
            data
        } else {
            return Err("reserved delta instruction 0".into());
        };
        if out.len() + chunk.len() > result_size {
            return Err(format!(
                "delta produces more than its declared {result_size} bytes"
            ));
        }
        out.extend_from_slice(chunk);
    }
    if out.len() != result_size {
        return Err(format!(
            "delta produces {} bytes, but declares {result_size}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas() {
        let base = b"hello world, hello git";
        // base size 22, result size 11: copy 6 bytes from 0, insert "there"
        let delta = [22, 11, 0x90, 6, 5, b't', b'h', b'e', b'r', b'e'];
        assert_eq!(apply_delta(base, &delta, 100).unwrap(), b"hello there");
        // offset byte present: copy 5 from 6 ("world")
        let delta = [22, 5, 0x91, 6, 5];
        assert_eq!(apply_delta(base, &delta, 100).unwrap(), b"world");
        for bad in [
            &[21u8, 11, 0x90, 6, 5, b't', b'h', b'e', b'r', b'e'][..],
            &[22, 12, 0x90, 6, 5, b't', b'h', b'e', b'r', b'e'],
            &[22, 10, 0x90, 6, 5, b't', b'h', b'e', b'r', b'e'],
            &[22, 5, 0x91, 20, 5],
            &[22, 5, 0x91, 0xff],
            &[22, 5, 0],
            &[22, 5, 5, b'a'],
            &[
                22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            &[22],
            &[],
        ] {
            assert!(apply_delta(base, bad, 100).is_err(), "{bad:?}");
        }
        // Declared size above the limit.
        assert!(apply_delta(base, &[22, 0xe5, 0x8e, 0x26], 100).is_err());
        // size 0 means 0x10000
        let big = vec![7u8; 0x10000];
        let delta = [0x80, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80];
        assert_eq!(apply_delta(&big, &delta, 1 << 20).unwrap(), big);
    }

    #[test]
    fn entry_headers() {
        let h = parse_entry_header(&[0x35], 100).unwrap();
        assert!(matches!(h.base, Base::Whole(ObjectKind::Blob)));
        assert_eq!((h.size, h.len), (5, 1));
        let h = parse_entry_header(&[0xb5, 0x01], 100).unwrap();
        assert_eq!(h.size, 5 + 16);
        let h = parse_entry_header(&[0x65, 0x0a], 100).unwrap();
        assert!(matches!(h.base, Base::Offset(90)));
        assert!(parse_entry_header(&[0x65, 0x7f], 100).is_err());
        assert!(parse_entry_header(&[0x65, 0x00], 100).is_err());
        assert!(parse_entry_header(&[0x05], 100).is_err());
        assert!(parse_entry_header(&[0x55], 100).is_err());
        assert!(parse_entry_header(&[0x75, 1, 2], 100).is_err());
        assert!(parse_entry_header(&[0xb5], 100).is_err());
        assert!(parse_entry_header(&[0xff; 16], 100).is_err());
        assert!(
            parse_entry_header(
                &[
                    0x65, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
                ],
                100
            )
            .is_err()
        );
    }
}
