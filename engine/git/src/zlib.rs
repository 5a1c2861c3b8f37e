//! Inflating zlib streams into buffers of a known size.

use flate2::{Decompress, FlushDecompress, Status};

/// Never reserve more than this up front: a declared size is only trusted as far as the stream
/// actually delivers data.
pub(crate) const PREALLOC_LIMIT: usize = 64 << 20;

/// Inflates the zlib stream at the start of `input`, appending exactly `expected` bytes to `out`.
///
/// Errors if the stream is corrupt, truncated, or inflates to a different size. `inflater` is
/// reset first, so one can be reused across calls. Returns the number of input bytes consumed.
pub(crate) fn inflate(
    inflater: &mut Decompress,
    input: &[u8],
    expected: usize,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    inflater.reset(true);
    let start = out.len();
    let target = start
        .checked_add(expected)
        .ok_or("declared size too large")?;
    // One spare byte so that data beyond the declared size is detected, and so that zlib always
    // has room to reach the end of the stream.
    out.reserve_exact(expected.min(PREALLOC_LIMIT).saturating_add(1));
    loop {
        if out.len() == out.capacity() {
            let grow = (out.len() - start)
                .max(1 << 16)
                .min((target - out.len()).saturating_add(1));
            out.reserve_exact(grow);
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(rest, out, FlushDecompress::Finish)
            .map_err(|e| format!("zlib error: {e}"))?;
        if out.len() > target {
            return Err(format!(
                "data inflates to more than its declared size of {expected} bytes"
            ));
        }
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                if inflater.total_in() == before_in && inflater.total_out() == before_out {
                    return Err(format!(
                        "truncated zlib stream ({} of {expected} bytes inflated)",
                        out.len() - start
                    ));
                }
            }
        }
    }
    if out.len() != target {
        return Err(format!(
            "data inflates to {} bytes, but its declared size is {expected}",
            out.len() - start
        ));
    }
    Ok(usize::try_from(inflater.total_in()).unwrap_or(usize::MAX))
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
    fn exact_sizes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let z = deflate(&data);
        let mut d = Decompress::new(true);
        let mut out = Vec::new();
        assert_eq!(inflate(&mut d, &z, data.len(), &mut out).unwrap(), z.len());
        assert_eq!(out, data);
        out.clear();
        assert!(inflate(&mut d, &z, data.len() - 1, &mut out).is_err());
        out.clear();
        assert!(inflate(&mut d, &z, data.len() + 1, &mut out).is_err());
        out.clear();
        assert!(inflate(&mut d, &z[..z.len() / 2], data.len(), &mut out).is_err());
        out.clear();
        assert!(inflate(&mut d, b"garbage garbage", 10, &mut out).is_err());
        out.clear();
        // A huge declared size does not allocate it.
        assert!(inflate(&mut d, &z, usize::MAX / 2, &mut out).is_err());
        assert!(out.capacity() < 1 << 28);
    }
}
