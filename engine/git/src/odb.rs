//! The object database: packs and loose objects of a repository and its alternates, with a
//! bounded cache of delta bases.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::Decompress;

use crate::error::{Error, Result};
use crate::oid::Prefix;
use crate::pack::{Base, Pack, PackIndex, apply_delta, parse_entry_header};
use crate::{ObjectId, ObjectKind, OpenOptions, loose, zlib};

/// Longest delta chain followed before the data is declared corrupt (git's default depth is 50,
/// `--depth` allows up to 4095).
const MAX_CHAIN: usize = 10_000;
/// Deepest nesting of REF_DELTA bases found outside the pack being read.
const MAX_REF_NESTING: usize = 64;
/// Deepest nesting of alternates files.
const MAX_ALTERNATES_DEPTH: usize = 5;

/// Object content, either owned or shared with the delta base cache.
pub(crate) enum Data {
    Owned(Vec<u8>),
    Shared(Rc<Vec<u8>>),
}

impl Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Shared(v) => v,
        }
    }
}

impl Data {
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            Data::Owned(v) => v,
            Data::Shared(rc) => Rc::try_unwrap(rc).unwrap_or_else(|rc| (*rc).clone()),
        }
    }
}

/// A cached base: its kind, content and last-use tick.
type CacheEntry = (ObjectKind, Rc<Vec<u8>>, u64);

/// Least-recently-used cache of delta bases, bounded in bytes, keyed by (pack, offset).
struct BaseCache {
    map: HashMap<(u32, u64), CacheEntry>,
    lru: BTreeMap<u64, (u32, u64)>,
    bytes: usize,
    limit: usize,
    tick: u64,
}

impl BaseCache {
    fn new(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            lru: BTreeMap::new(),
            bytes: 0,
            limit,
            tick: 0,
        }
    }

    fn get(&mut self, key: (u32, u64)) -> Option<(ObjectKind, Rc<Vec<u8>>)> {
        let (kind, data, tick) = self.map.get_mut(&key)?;
        self.lru.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.lru.insert(self.tick, key);
        Some((*kind, Rc::clone(data)))
    }

    fn put(&mut self, key: (u32, u64), kind: ObjectKind, data: Rc<Vec<u8>>) {
        let size = data.len();
        if size > self.limit / 2 {
            return;
        }
        if let Some((_, old, tick)) = self.map.remove(&key) {
            self.lru.remove(&tick);
            self.bytes -= old.len();
        }
        while self.bytes + size > self.limit {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            if let Some((_, old, _)) = self.map.remove(&victim) {
                self.bytes -= old.len();
            }
        }
        self.tick += 1;
        self.lru.insert(self.tick, key);
        self.map.insert(key, (kind, data, self.tick));
        self.bytes += size;
    }
}

/// All objects reachable through a repository's object directory and its alternates.
pub(crate) struct Odb {
    dirs: Vec<PathBuf>,
    packs: Vec<Pack>,
    cache: RefCell<BaseCache>,
    inflater: RefCell<Decompress>,
    last_pack: Cell<usize>,
    max_object_size: u64,
}

impl Odb {
    pub(crate) fn open(objects: &Path, opts: &OpenOptions) -> Result<Self> {
        let mut dirs = vec![objects.to_owned()];
        collect_alternates(objects, &mut dirs, 0);
        let mut packs = Vec::new();
        for dir in &dirs {
            let pack_dir = dir.join("pack");
            let Ok(entries) = std::fs::read_dir(&pack_dir) else {
                continue;
            };
            let mut found = Vec::new();
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "idx") {
                    let pack_path = path.with_extension("pack");
                    let Ok(meta) = std::fs::metadata(&pack_path) else {
                        continue;
                    };
                    found.push((meta.modified().ok(), path, pack_path));
                }
            }
            // Newest packs first, as git does: recent objects are the most likely to be wanted.
            found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            for (_, idx_path, pack_path) in found {
                let idx = PackIndex::open(&idx_path)?;
                packs.push(Pack::open(&pack_path, idx, opts.whole_pack_limit)?);
            }
        }
        Ok(Self {
            dirs,
            packs,
            cache: RefCell::new(BaseCache::new(opts.delta_cache_bytes)),
            inflater: RefCell::new(Decompress::new(true)),
            last_pack: Cell::new(0),
            max_object_size: opts.max_object_size,
        })
    }

    /// Reads an object from wherever it is stored.
    pub(crate) fn read(&self, id: &ObjectId) -> Result<(ObjectKind, Data)> {
        self.read_nested(id, 0)
    }

    fn read_nested(&self, id: &ObjectId, nesting: usize) -> Result<(ObjectKind, Data)> {
        if nesting > MAX_REF_NESTING {
            return Err(Error::Corrupt {
                path: self.dirs[0].clone(),
                msg: format!("delta bases of {id} nest too deeply (cycle?)"),
            });
        }
        if let Some((pack, offset)) = self.find_packed(id)? {
            return self.read_packed(pack, offset, nesting);
        }
        for dir in &self.dirs {
            let path = loose::path(dir, id);
            let mut inflater = self.inflater.borrow_mut();
            if let Some((kind, data)) = loose::read(&path, &mut inflater, self.max_object_size)? {
                return Ok((kind, Data::Owned(data)));
            }
        }
        Err(Error::ObjectNotFound(*id))
    }

    /// Whether the object exists (without reading it).
    pub(crate) fn contains(&self, id: &ObjectId) -> Result<bool> {
        if self.find_packed(id)?.is_some() {
            return Ok(true);
        }
        Ok(self.dirs.iter().any(|d| loose::path(d, id).is_file()))
    }

    /// Finds the pack and offset holding `id`, trying the last pack that answered first.
    fn find_packed(&self, id: &ObjectId) -> Result<Option<(usize, u64)>> {
        let n = self.packs.len();
        let start = self.last_pack.get();
        for k in 0..n {
            let p = (start + k) % n;
            if let Some(i) = self.packs[p].idx.lookup(id) {
                self.last_pack.set(p);
                return Ok(Some((p, self.packs[p].idx.offset_at(i)?)));
            }
        }
        Ok(None)
    }

    /// Inflates `expected` bytes from `input`.
    fn inflate(&self, input: &[u8], expected: u64) -> Result<Vec<u8>, String> {
        if expected > self.max_object_size {
            return Err(format!(
                "declared size {expected} exceeds the limit of {} bytes",
                self.max_object_size
            ));
        }
        let expected = usize::try_from(expected).map_err(|_| "object too large")?;
        let mut out = Vec::new();
        zlib::inflate(&mut self.inflater.borrow_mut(), input, expected, &mut out)?;
        Ok(out)
    }

    /// Reads the object at `offset` of pack `pack_no`, resolving its delta chain. Intermediate
    /// results (the bases) are cached; the requested object itself is not.
    fn read_packed(
        &self,
        pack_no: usize,
        offset: u64,
        nesting: usize,
    ) -> Result<(ObjectKind, Data)> {
        let pack = &self.packs[pack_no];
        let key = |off: u64| (pack_no as u32, off);
        let mut deltas: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut cur = offset;
        // The base object, and its offset in this pack if it is to be cached.
        let (kind, mut data, mut data_offset) = loop {
            if let Some((kind, data)) = self.cache.borrow_mut().get(key(cur)) {
                break (kind, Data::Shared(data), None);
            }
            let bytes = pack.entry(cur)?;
            let header = parse_entry_header(&bytes, cur).map_err(|m| pack.corrupt(cur, m))?;
            let body = bytes.get(header.len..).unwrap_or_default();
            let inflated = self
                .inflate(body, header.size)
                .map_err(|m| pack.corrupt(cur, m))?;
            match header.base {
                Base::Whole(kind) => break (kind, Data::Owned(inflated), Some(cur)),
                Base::Offset(base) => {
                    deltas.push((cur, inflated));
                    cur = base;
                }
                Base::Id(id) => {
                    deltas.push((cur, inflated));
                    match pack.idx.lookup(&id) {
                        Some(i) => cur = pack.idx.offset_at(i)?,
                        None => {
                            let (kind, data) = self.read_nested(&id, nesting + 1)?;
                            break (kind, data, None);
                        }
                    }
                }
            }
            if deltas.len() > MAX_CHAIN {
                return Err(pack.corrupt(offset, "delta chain too long (cycle?)"));
            }
        };
        while let Some((off, delta)) = deltas.pop() {
            if let (Some(base_off), Data::Owned(v)) = (data_offset, &mut data) {
                let shared = Rc::new(std::mem::take(v));
                self.cache
                    .borrow_mut()
                    .put(key(base_off), kind, Rc::clone(&shared));
                data = Data::Shared(shared);
            }
            let out = apply_delta(&data, &delta, self.max_object_size)
                .map_err(|m| pack.corrupt(off, m))?;
            data = Data::Owned(out);
            data_offset = Some(off);
        }
        Ok((kind, data))
    }

    /// All objects whose id starts with `prefix` (at least 4 digits), in packs and loose.
    pub(crate) fn find_prefix(&self, prefix: &Prefix) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        for pack in &self.packs {
            pack.idx.find_prefix(prefix, &mut out);
        }
        let first = format!("{:02x}", prefix.first_byte());
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(&first)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(rest) = name.to_str() else { continue };
                if let Some(id) = ObjectId::from_hex(&format!("{first}{rest}"))
                    && prefix.matches(id.as_bytes())
                {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Number of packs (for diagnostics).
    pub(crate) fn pack_count(&self) -> usize {
        self.packs.len()
    }
}

/// Appends the object directories listed in `dir/info/alternates`, recursively.
fn collect_alternates(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth >= MAX_ALTERNATES_DEPTH {
        return;
    }
    let Ok(text) = std::fs::read_to_string(dir.join("info").join("alternates")) else {
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let alt = dir.join(line);
        if alt.is_dir() && !out.contains(&alt) {
            out.push(alt.clone());
            collect_alternates(&alt, out, depth + 1);
        }
    }
}
