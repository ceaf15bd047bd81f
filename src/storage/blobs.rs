//! [`Blobs`]: the bytes of uploaded files, named by their content hash. The embedded store keeps
//! them as files under the data folder (two levels, `ab/abcdef…`); PostgreSQL keeps them in the
//! `file_bytes` table, so every node serves every file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::Table;

/// Where file bytes live.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// Files under a folder.
    OnDisk(PathBuf),
    /// Rows of a table.
    InTable(Table),
}

impl Blobs {
    /// Files under `root`.
    pub fn on_disk(root: PathBuf) -> Blobs {
        Blobs::OnDisk(root)
    }

    /// Rows of `table`.
    pub fn in_table(table: Table) -> Blobs {
        Blobs::InTable(table)
    }

    /// Whether a blob named `hash` is stored.
    pub fn contains(&self, hash: &str) -> Result<bool> {
        match self {
            Blobs::OnDisk(root) => Ok(path_of(root, hash).exists()),
            Blobs::InTable(table) => table.contains_key(hash),
        }
    }

    /// Stores `bytes` as `hash` (durably: the bytes are on disk or committed when this returns).
    pub fn write(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Blobs::OnDisk(root) => {
                let path = path_of(root, hash);
                let folder = path.parent().unwrap_or(root);
                std::fs::create_dir_all(folder).map_err(|error| Error::io(folder, error))?;
                crate::articles::write_file_atomically(&path, bytes)
            }
            Blobs::InTable(table) => table.insert(hash, bytes),
        }
    }

    /// The bytes of `hash`.
    pub fn read(&self, hash: &str) -> Result<Vec<u8>> {
        match self {
            Blobs::OnDisk(root) => {
                let path = path_of(root, hash);
                std::fs::read(&path).map_err(|error| Error::io(&path, error))
            }
            Blobs::InTable(table) => table
                .get(hash)?
                .ok_or_else(|| Error::NotFound(format!("the bytes of file `{hash}` are missing"))),
        }
    }

    /// Bytes of every stored blob (read once at start, for the disk budget).
    pub fn total_bytes(&self) -> Result<u64> {
        match self {
            Blobs::OnDisk(root) => Ok(bytes_under(root)),
            Blobs::InTable(table) => table.value_bytes(),
        }
    }

    /// Every blob's hash, for export.
    pub fn hashes(&self) -> Result<Vec<String>> {
        match self {
            Blobs::OnDisk(root) => Ok(walkdir::WalkDir::new(root)
                .min_depth(2)
                .max_depth(2)
                .into_iter()
                .filter_map(std::result::Result::ok)
                .filter(|entry| entry.file_type().is_file())
                .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                .filter(|name| !name.starts_with('.'))
                .collect()),
            Blobs::InTable(table) => Ok(table
                .keys()?
                .into_iter()
                .filter_map(|key| String::from_utf8(key).ok())
                .collect()),
        }
    }
}

fn path_of(root: &Path, hash: &str) -> PathBuf {
    let folder: String = hash.chars().take(2).collect();
    root.join(folder).join(hash)
}

/// Bytes of the files under `root` (two levels: prefix folder, file); 0 when it does not exist yet.
fn bytes_under(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}
