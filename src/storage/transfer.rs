//! `kefu export` / `kefu import`: a whole installation as one JSON-lines file, so it can move
//! between the embedded database and PostgreSQL (or to a new server).
//!
//! The first line is a header (`{"kefu_export":1,"next_id":…}`); then one line per record
//! (`{"table":…,"key":…,"value":…}`, key and value in base64, since keys are binary) and one per
//! uploaded file (`{"file":<hash>,"bytes":…}`). Tables are read in pages, so an export's memory does
//! not grow with the installation.

use std::io::BufRead;
use std::ops::Bound;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{Blobs, Store, Write};

/// Format version of the header.
const FORMAT: u32 = 1;
/// Records read (export) or written in one transaction (import) at a time.
const PAGE: usize = 500;

#[derive(Serialize, Deserialize)]
struct Header {
    kefu_export: u32,
    /// Every id the source handed out is below this.
    next_id: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Record {
        table: String,
        key: String,
        value: String,
    },
    File {
        file: String,
        bytes: String,
    },
}

/// What an export or import moved.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records, over all tables.
    pub records: u64,
    /// Uploaded files.
    pub files: u64,
}

/// Writes every record of `store` and every file of `blobs` to `out`.
///
/// Fails with [`Error::Storage`] when a read fails, or [`Error::Io`]-like errors when `out` does.
pub fn export(store: &Store, blobs: &Blobs, out: &mut impl std::io::Write) -> Result<Counts> {
    let io = |error: std::io::Error| Error::Storage(format!("writing the export: {error}"));
    let header = Header {
        kefu_export: FORMAT,
        next_id: store.next_id()?,
    };
    writeln!(out, "{}", json(&header)?).map_err(io)?;
    let mut counts = Counts::default();
    for (name, table) in store.tables() {
        if name == "file_bytes" {
            // Files travel as `file` lines, whichever way the source keeps them.
            continue;
        }
        let mut after: Bound<Vec<u8>> = Bound::Unbounded;
        loop {
            let page = table.range_limited(after.clone(), Bound::Unbounded, Some(PAGE), false)?;
            for (key, value) in &page {
                let line = Line::Record {
                    table: name.to_string(),
                    key: STANDARD.encode(key),
                    value: STANDARD.encode(value),
                };
                writeln!(out, "{}", json(&line)?).map_err(io)?;
                counts.records += 1;
            }
            match page.last() {
                Some((key, _)) if page.len() == PAGE => after = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }
    for hash in blobs.hashes()? {
        let line = Line::File {
            bytes: STANDARD.encode(blobs.read(&hash)?),
            file: hash,
        };
        writeln!(out, "{}", json(&line)?).map_err(io)?;
        counts.files += 1;
    }
    out.flush().map_err(io)?;
    Ok(counts)
}

/// Reads an export into `store` and `blobs`, which must be empty (a fresh installation).
///
/// Fails with [`Error::InvalidInput`]-style [`Error::Storage`] errors naming the line when the file
/// is not an export, or when the target already holds records; nothing is half-imported silently:
/// the error says how far it got.
pub fn import(store: &mut Store, blobs: &Blobs, input: impl BufRead) -> Result<Counts> {
    for (name, table) in store.tables() {
        if !table.is_empty()? {
            return Err(Error::Storage(format!(
                "the target already holds records (table `{name}`); import into an empty database"
            )));
        }
    }
    let mut lines = input.lines();
    let first = lines
        .next()
        .ok_or_else(|| Error::Storage("the export is empty".into()))?
        .map_err(|error| Error::Storage(format!("reading the export: {error}")))?;
    let header: Header = serde_json::from_str(&first)
        .map_err(|_| Error::Storage("line 1 is not a kefu export header".into()))?;
    if header.kefu_export != FORMAT {
        return Err(Error::Storage(format!(
            "export format {} is not known to this kefu (it reads {FORMAT})",
            header.kefu_export
        )));
    }
    let counts = read_records(store, blobs, lines)?;
    store.raise_ids_above(header.next_id)?;
    store.flush()?;
    Ok(counts)
}

/// The lines after the header, written in transactions of [`PAGE`] records.
fn read_records(
    store: &Store,
    blobs: &Blobs,
    lines: impl Iterator<Item = std::io::Result<String>>,
) -> Result<Counts> {
    let tables = store.tables();
    let mut counts = Counts::default();
    let mut pending: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
    let flush = |pending: &mut Vec<(usize, Vec<u8>, Vec<u8>)>| -> Result<()> {
        let writes: Vec<Write<'_>> = pending
            .drain(..)
            .map(|(table, key, value)| Write {
                table: tables[table].1,
                key,
                value: Some(value),
            })
            .collect();
        store.write_all(&writes)
    };
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(|error| Error::Storage(format!("reading the export: {error}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|_| Error::Storage(format!("line {number} is neither a record nor a file")))?;
        match parsed {
            Line::Record { table, key, value } => {
                let position = tables
                    .iter()
                    .position(|(name, _)| *name == table && *name != "file_bytes")
                    .ok_or_else(|| {
                        Error::Storage(format!("line {number} names an unknown table `{table}`"))
                    })?;
                pending.push((position, base64(&key, number)?, base64(&value, number)?));
                counts.records += 1;
                if pending.len() >= PAGE {
                    flush(&mut pending)?;
                }
            }
            Line::File { file, bytes } => {
                if file.len() != 64 || !file.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return Err(Error::Storage(format!(
                        "line {number} names a file that is not a content hash"
                    )));
                }
                let bytes = base64(&bytes, number)?;
                if blake3::hash(&bytes).to_hex().as_str() != file {
                    return Err(Error::Storage(format!(
                        "line {number}: the file's bytes do not match its hash"
                    )));
                }
                blobs.write(&file, &bytes)?;
                counts.files += 1;
            }
        }
    }
    flush(&mut pending)?;
    Ok(counts)
}

fn base64(text: &str, line: usize) -> Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|_| Error::Storage(format!("line {line} holds invalid base64")))
}

fn json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|error| Error::Storage(format!("encoding the export: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_imports_into_an_empty_store_and_ids_continue_above_it() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = Store::open(source_dir.path()).unwrap();
        for _ in 0..3 {
            source.next_id().unwrap();
        }
        source.accounts.insert(b"\x00\x01", b"{\"a\":1}").unwrap();
        for n in 0..(PAGE as u32 + 7) {
            source.messages.insert(n.to_be_bytes(), b"m").unwrap();
        }
        let source_blobs = source.blobs(source_dir.path());
        let bytes = b"hello file".to_vec();
        let hash = blake3::hash(&bytes).to_hex().to_string();
        source_blobs.write(&hash, &bytes).unwrap();
        let mut exported = Vec::new();
        let counts = export(&source, &source_blobs, &mut exported).unwrap();
        assert_eq!(counts.records, PAGE as u64 + 8);
        assert_eq!(counts.files, 1);

        let target_dir = tempfile::tempdir().unwrap();
        let mut target = Store::open(target_dir.path()).unwrap();
        let target_blobs = target.blobs(target_dir.path());
        let imported = import(&mut target, &target_blobs, exported.as_slice()).unwrap();
        assert_eq!(imported, counts);
        assert_eq!(target.messages.len().unwrap(), PAGE + 7);
        assert_eq!(
            target.accounts.get(b"\x00\x01").unwrap().unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(target_blobs.read(&hash).unwrap(), bytes);
        assert!(target.next_id().unwrap() > 3);

        // A second import into the now full store is refused, and a file that is no export too.
        let again = import(&mut target, &target_blobs, exported.as_slice()).unwrap_err();
        assert!(
            again.to_string().contains("already holds records"),
            "{again}"
        );
        let empty_dir = tempfile::tempdir().unwrap();
        let mut empty = Store::open(empty_dir.path()).unwrap();
        let blobs = empty.blobs(empty_dir.path());
        let error = import(&mut empty, &blobs, &b"not an export\n"[..]).unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
