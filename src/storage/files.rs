//! Uploaded files behind [`FileRepository`]: each conversation's attachments, the files' bytes by
//! content hash, and what each visitor uploaded (their quota). [`StoredFiles`] keeps them in the
//! store's tables and its [`Blobs`].
//!
//! Keys, unchanged since these were first stored:
//! - `files`: conversation id, 0x00, BLAKE3 hex of the content → `Attachment`: one conversation's
//!   files are one range;
//! - `visitor_uploads`: visitor id → `UploadUsage`;
//! - the bytes: files under `data/files` on sled, the `file_bytes` table on PostgreSQL.

use std::path::Path;

use crate::domain::{Attachment, UploadUsage};
use crate::error::Result;
use crate::storage::{self, Blobs, Store, Write};

/// Where uploaded files live.
pub trait FileRepository: Send + Sync + std::fmt::Debug {
    /// The attachment `hash` of `conversation`.
    fn attachment(&self, conversation: &str, hash: &str) -> Result<Option<Attachment>>;
    /// Files and bytes `conversation` holds.
    fn conversation_usage(&self, conversation: &str) -> Result<UploadUsage>;
    /// What `visitor` uploaded so far.
    fn visitor_usage(&self, visitor: &str) -> Result<UploadUsage>;
    /// Files `attachment` under `conversation` and, for a visitor's upload, sets their usage to
    /// `visitor_usage`: all or none on PostgreSQL; on sled the attachment first, so a crash between
    /// the two leaves a file the visitor was not charged for, never a charge without its file.
    fn record_upload(
        &self,
        conversation: &str,
        attachment: &Attachment,
        visitor_usage: Option<(&str, UploadUsage)>,
    ) -> Result<()>;
    /// Whether bytes with content hash `hash` are stored.
    fn contains_bytes(&self, hash: &str) -> Result<bool>;
    /// Stores `bytes` as `hash`, durably.
    fn write_bytes(&self, hash: &str, bytes: &[u8]) -> Result<()>;
    /// The bytes of `hash`.
    fn read_bytes(&self, hash: &str) -> Result<Vec<u8>>;
    /// Bytes of every stored file together (read once at start, for the disk budget).
    fn total_bytes(&self) -> Result<u64>;
}

/// [`FileRepository`] in the store's tables and blobs.
#[derive(Debug, Clone)]
pub struct StoredFiles {
    store: Store,
    blobs: Blobs,
}

impl StoredFiles {
    /// Files in `store`, their bytes where the store keeps them (under `data_dir` on sled).
    pub fn new(store: &Store, data_dir: &Path) -> StoredFiles {
        StoredFiles {
            blobs: store.blobs(data_dir),
            store: store.clone(),
        }
    }
}

fn conversation_prefix(conversation: &str) -> Vec<u8> {
    [conversation.as_bytes(), &[0]].concat()
}

fn attachment_key(conversation: &str, hash: &str) -> Vec<u8> {
    [&conversation_prefix(conversation)[..], hash.as_bytes()].concat()
}

impl FileRepository for StoredFiles {
    fn attachment(&self, conversation: &str, hash: &str) -> Result<Option<Attachment>> {
        storage::get_json(&self.store.files, attachment_key(conversation, hash))
    }

    fn conversation_usage(&self, conversation: &str) -> Result<UploadUsage> {
        let mut usage = UploadUsage::default();
        for (_, value) in self
            .store
            .files
            .scan_prefix(conversation_prefix(conversation))?
        {
            let attachment: Attachment = storage::decode(&value)?;
            usage.files += 1;
            usage.bytes += attachment.size;
        }
        Ok(usage)
    }

    fn visitor_usage(&self, visitor: &str) -> Result<UploadUsage> {
        Ok(storage::get_json(&self.store.visitor_uploads, visitor)?.unwrap_or_default())
    }

    fn record_upload(
        &self,
        conversation: &str,
        attachment: &Attachment,
        visitor_usage: Option<(&str, UploadUsage)>,
    ) -> Result<()> {
        let mut writes = vec![Write {
            table: &self.store.files,
            key: attachment_key(conversation, &attachment.hash),
            value: Some(storage::encode(attachment)?),
        }];
        if let Some((visitor, usage)) = visitor_usage {
            writes.push(Write {
                table: &self.store.visitor_uploads,
                key: visitor.as_bytes().to_vec(),
                value: Some(storage::encode(&usage)?),
            });
        }
        self.store.write_all(&writes)
    }

    fn contains_bytes(&self, hash: &str) -> Result<bool> {
        self.blobs.contains(hash)
    }

    fn write_bytes(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        self.blobs.write(hash, bytes)
    }

    fn read_bytes(&self, hash: &str) -> Result<Vec<u8>> {
        self.blobs.read(hash)
    }

    fn total_bytes(&self) -> Result<u64> {
        self.blobs.total_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(hash: &str, size: u64) -> Attachment {
        Attachment {
            hash: hash.into(),
            name: format!("{hash}.png"),
            content_type: "image/png".into(),
            size,
        }
    }

    #[test]
    fn uploads_count_against_their_conversation_and_visitor() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let files = StoredFiles::new(&store, folder.path());
        let charged = UploadUsage {
            files: 1,
            bytes: 10,
        };
        files
            .record_upload("c_1", &attachment("aa", 10), Some(("v_1", charged)))
            .unwrap();
        files
            .record_upload("c_1", &attachment("bb", 5), None)
            .unwrap();
        // A conversation whose id extends another's holds files of its own.
        files
            .record_upload("c_10", &attachment("cc", 7), None)
            .unwrap();
        assert_eq!(
            files.conversation_usage("c_1").unwrap(),
            UploadUsage {
                files: 2,
                bytes: 15
            }
        );
        assert_eq!(files.visitor_usage("v_1").unwrap(), charged);
        assert_eq!(files.visitor_usage("v_2").unwrap(), UploadUsage::default());
        assert_eq!(files.attachment("c_1", "bb").unwrap().unwrap().size, 5);
        assert!(files.attachment("c_10", "bb").unwrap().is_none());
    }

    #[test]
    fn bytes_are_stored_once_by_hash() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let files = StoredFiles::new(&store, folder.path());
        assert!(!files.contains_bytes("abcdef").unwrap());
        files.write_bytes("abcdef", b"12345").unwrap();
        assert!(files.contains_bytes("abcdef").unwrap());
        assert_eq!(files.read_bytes("abcdef").unwrap(), b"12345");
        assert_eq!(files.total_bytes().unwrap(), 5);
    }
}
