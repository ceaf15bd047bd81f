//! Approximate location of an IPv4 address from an ip2region xdb file (format 2.0), read into memory
//! once. The published Rust reader (`ip2region` 0.1) panics on a short file and underflows its binary
//! search at the first segment, so this small reader checks every offset instead.

use std::net::IpAddr;
use std::path::Path;

use crate::domain::Location;

const HEADER_BYTES: usize = 256;
const VECTOR_COLUMNS: usize = 256;
const VECTOR_ENTRY_BYTES: usize = 8;
const VECTOR_BYTES: usize = 256 * VECTOR_COLUMNS * VECTOR_ENTRY_BYTES;
const SEGMENT_BYTES: usize = 14;

/// An opened ip2region database.
#[derive(Debug)]
pub struct GeoDb {
    bytes: Vec<u8>,
}

impl GeoDb {
    /// Reads `path`; `None` (with a log line) when it is missing or not an xdb 2.0 file, so locations
    /// are then unknown rather than the start failing.
    pub fn open(path: &Path) -> Option<GeoDb> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::info!(path = %path.display(), %error, "no IP location database; visitor locations will be unknown");
                return None;
            }
        };
        match GeoDb::from_bytes(bytes) {
            Some(db) => Some(db),
            None => {
                tracing::warn!(path = %path.display(), "not an ip2region xdb 2.0 file; visitor locations will be unknown");
                None
            }
        }
    }

    /// A database from the bytes of an xdb file, if they look like one.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<GeoDb> {
        let version = u16::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
        (version == 2 && bytes.len() >= HEADER_BYTES + VECTOR_BYTES).then_some(GeoDb { bytes })
    }

    /// The location of `ip`; unknown parts (ip2region writes `0`) are `None`, as is everything for
    /// IPv6 and private addresses.
    pub fn lookup(&self, ip: IpAddr) -> Location {
        let IpAddr::V4(ip) = ip else {
            return Location::default();
        };
        let Some(record) = self.record(u32::from(ip)) else {
            return Location::default();
        };
        // country|region|province|city|isp
        let mut parts = record.split('|').map(|part| {
            let part = part.trim();
            (!part.is_empty() && part != "0" && part != "内网IP").then(|| part.to_string())
        });
        let country = parts.next().flatten();
        let _region = parts.next();
        Location {
            country,
            province: parts.next().flatten(),
            city: parts.next().flatten(),
            isp: parts.next().flatten(),
        }
    }

    fn record(&self, ip: u32) -> Option<&str> {
        let [first, second, ..] = ip.to_be_bytes();
        let vector =
            HEADER_BYTES + (first as usize * VECTOR_COLUMNS + second as usize) * VECTOR_ENTRY_BYTES;
        let start = self.u32_at(vector)? as usize;
        let end = self.u32_at(vector + 4)? as usize;
        if end < start {
            return None;
        }
        // Segments [start, end] are sorted and disjoint: binary search over their indexes.
        let (mut low, mut high) = (0usize, (end - start) / SEGMENT_BYTES + 1);
        while low < high {
            let middle = (low + high) / 2;
            let at = start + middle * SEGMENT_BYTES;
            let (segment_start, segment_end) = (self.u32_at(at)?, self.u32_at(at + 4)?);
            if ip < segment_start {
                high = middle;
            } else if ip > segment_end {
                low = middle + 1;
            } else {
                let length = u16::from_le_bytes(self.bytes.get(at + 8..at + 10)?.try_into().ok()?);
                let data = self.u32_at(at + 10)? as usize;
                let text = self.bytes.get(data..data + length as usize)?;
                return std::str::from_utf8(text).ok();
            }
        }
        None
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.bytes.get(at..at + 4)?.try_into().ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_no_database_and_never_panics() {
        assert!(GeoDb::from_bytes(vec![]).is_none());
        assert!(GeoDb::from_bytes(vec![2, 0, 1]).is_none());
        let mut bytes = vec![0u8; HEADER_BYTES + VECTOR_BYTES];
        bytes[0] = 2;
        // Every vector entry points far outside the file.
        for entry in bytes[HEADER_BYTES..].chunks_mut(4) {
            entry.copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let db = GeoDb::from_bytes(bytes).unwrap();
        assert_eq!(db.lookup("1.2.3.4".parse().unwrap()), Location::default());
    }
}
