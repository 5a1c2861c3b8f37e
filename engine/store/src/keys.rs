//! Key encoding for the trees (the layout is documented in the crate docs).

use crate::run_id::RunId;

/// Separates a run id from what follows it in step and log keys. Run ids never
/// contain it, so `RUN + SEP` is a prefix of exactly that run's keys.
const SEP: u8 = 0;

/// The `meta` key holding the schema version (u32, big-endian).
pub(crate) const SCHEMA_VERSION: &[u8] = b"schema_version";
/// The `meta` key prefix marking runs that are `Running`.
pub(crate) const ACTIVE_PREFIX: &[u8] = b"active/";

/// `runs` key.
pub(crate) fn run(id: &RunId) -> &[u8] {
    id.as_str().as_bytes()
}

/// Prefix of all of a run's keys in `steps` and `logs`.
pub(crate) fn run_prefix(id: &RunId) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.as_str().len() + 13);
    key.extend_from_slice(id.as_str().as_bytes());
    key.push(SEP);
    key
}

/// `steps` key; also the prefix of the step's keys in `logs`.
pub(crate) fn step(id: &RunId, index: u32) -> Vec<u8> {
    let mut key = run_prefix(id);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The step index at the end of a [`step`] key.
pub(crate) fn step_index(key: &[u8]) -> Option<u32> {
    let tail = key.get(key.len().checked_sub(4)?..)?;
    <[u8; 4]>::try_from(tail).ok().map(u32::from_be_bytes)
}

/// `logs` key: its step's key and its first line's `seq`.
pub(crate) fn log(id: &RunId, index: u32, seq: u64) -> Vec<u8> {
    let mut key = step(id, index);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `meta` key of the running-run marker.
pub(crate) fn active(id: &RunId) -> Vec<u8> {
    let mut key = ACTIVE_PREFIX.to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// The step index and sequence number at the end of a `logs` key.
pub(crate) fn split_log(key: &[u8]) -> Option<(u32, u64)> {
    let tail = key.len().checked_sub(12).and_then(|at| key.get(at..))?;
    let (index, seq) = tail.split_at(4);
    Some((
        u32::from_be_bytes(index.try_into().ok()?),
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// A key as people read it: the run id, then `/index` and `/seq` for step and log keys.
pub(crate) fn describe(key: &[u8]) -> String {
    let Some(sep) = key.iter().position(|&b| b == SEP) else {
        return String::from_utf8_lossy(key).into_owned();
    };
    let (run, rest) = key.split_at(sep);
    let rest = &rest[1..];
    let mut text = String::from_utf8_lossy(run).into_owned();
    match rest.len() {
        4 => {
            let index = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            text.push_str(&format!("/{index}"));
        }
        12 => {
            if let Some((index, seq)) = split_log(rest) {
                text.push_str(&format!("/{index}/{seq}"));
            }
        }
        _ => text.push_str(&format!("/{rest:02x?}")),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_nest_and_describe_themselves() {
        let id = RunId::parse("20261122-034455-7f3a").expect("valid id");
        let step = step(&id, 2);
        let log = log(&id, 2, 9);
        assert!(step.starts_with(&run_prefix(&id)));
        assert!(log.starts_with(&step));
        assert_eq!(split_log(&log), Some((2, 9)));
        assert_eq!(describe(&step), "20261122-034455-7f3a/2");
        assert_eq!(describe(&log), "20261122-034455-7f3a/2/9");
        assert_eq!(describe(run(&id)), "20261122-034455-7f3a");
    }

    #[test]
    fn big_endian_numbers_sort_numerically() {
        let id = RunId::parse("r").expect("valid id");
        assert!(step(&id, 9) < step(&id, 10));
        assert!(step(&id, 255) < step(&id, 256));
        assert!(log(&id, 1, 255) < log(&id, 1, 256));
        assert!(log(&id, 1, u64::MAX) < log(&id, 2, 0));
    }
}
