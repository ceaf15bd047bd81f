//! Files sent in a conversation: size and type checks (the content is sniffed and must match the
//! name's extension), storage by content hash (`storage::FileRepository`), and per-conversation
//! access.
//!
//! Uploads are bounded four ways, checked in this order before anything is written: a rate per visitor
//! (`visitor_uploads_per_minute`), a quota per conversation and one per visitor (files and bytes), and
//! a disk budget for all files together (`upload_disk_budget_bytes`).

use parking_lot::Mutex;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ConversationsConfig;
use crate::domain::limits::MAX_FILE_NAME_CHARS;
use crate::domain::{Attachment, UploadUsage};
use crate::error::{Error, Result};
use crate::storage::FileRepository;

/// Longest extension kept whole when a long name is cut.
const MAX_EXTENSION_CHARS: usize = 16;
/// Files one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// Who uploads: a visitor's uploads count against their quota and rate; staff have neither.
#[derive(Debug, Clone, Copy)]
pub enum Uploader<'a> {
    /// The conversation's visitor, by id.
    Visitor(&'a str),
    /// An agent.
    Staff,
}

/// The file store.
pub struct Files {
    files: Arc<dyn FileRepository>,
    /// Bytes of every stored file, read at start.
    bytes_on_disk: AtomicU64,
    visitor_rate: DefaultKeyedRateLimiter<String>,
    /// Quotas are checked and counted under this lock, so concurrent uploads cannot both slip in.
    quota_lock: Mutex<()>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Files")
            .field("files", &self.files)
            .field("bytes_on_disk", &self.bytes_on_disk)
            .finish_non_exhaustive()
    }
}

impl Files {
    /// Files in `files`; accepts `per_minute` uploads per visitor.
    ///
    /// Fails when the stored bytes cannot be counted.
    pub fn new(files: Arc<dyn FileRepository>, per_minute: u32) -> Result<Files> {
        let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Files {
            bytes_on_disk: AtomicU64::new(files.total_bytes()?),
            files,
            visitor_rate: RateLimiter::keyed(Quota::per_minute(per_minute)),
            quota_lock: Mutex::new(()),
        })
    }

    /// Checks and stores an upload for `conversation`; see the module docs for the bounds.
    pub fn store(
        &self,
        conversation: &str,
        uploader: Uploader<'_>,
        name: &str,
        bytes: &[u8],
        config: &ConversationsConfig,
    ) -> Result<Attachment> {
        if let Uploader::Visitor(visitor) = uploader {
            if self.visitor_rate.check_key(&visitor.to_string()).is_err() {
                return Err(Error::RateLimited);
            }
        }
        let max_bytes = config.max_upload_bytes;
        if bytes.len() > max_bytes {
            return Err(Error::UploadTooLarge { max_bytes });
        }
        if bytes.is_empty() {
            return Err(Error::InvalidUpload("the file is empty".into()));
        }
        let name = clean_name(name)?;
        let extension = name
            .rsplit_once('.')
            .map(|(_, extension)| extension.to_lowercase())
            .ok_or_else(|| Error::InvalidUpload(format!("`{name}` has no extension")))?;
        let allowed = &config.upload_types;
        if !allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&extension))
        {
            return Err(Error::InvalidUpload(format!(
                "`.{extension}` files are not accepted; allowed: {}",
                allowed.join(", ")
            )));
        }
        let content_type = sniff(bytes, &extension)?;
        let hash = blake3::hash(bytes).to_hex().to_string();
        let size = bytes.len() as u64;

        let _counting = self.quota_lock.lock();
        let held = self.files.conversation_usage(conversation)?;
        let again = self.files.attachment(conversation, &hash)?.is_some();
        if !again
            && (held.files >= config.max_uploads_per_conversation as u64
                || held.bytes + size > config.max_upload_bytes_per_conversation)
        {
            return Err(Error::UploadQuotaExceeded(format!(
                "this conversation holds its maximum of files ({} files, {} bytes)",
                config.max_uploads_per_conversation, config.max_upload_bytes_per_conversation
            )));
        }
        let visitor_usage = match uploader {
            Uploader::Visitor(visitor) => {
                let usage = self.files.visitor_usage(visitor)?;
                if usage.files >= config.max_uploads_per_visitor as u64
                    || usage.bytes + size > config.max_upload_bytes_per_visitor
                {
                    return Err(Error::UploadQuotaExceeded(format!(
                        "you have sent the maximum of files ({} files, {} bytes)",
                        config.max_uploads_per_visitor, config.max_upload_bytes_per_visitor
                    )));
                }
                Some((visitor, usage))
            }
            Uploader::Staff => None,
        };
        if !self.files.contains_bytes(&hash)? {
            let budget_bytes = config.upload_disk_budget_bytes;
            if self.bytes_on_disk.load(Ordering::Relaxed) + size > budget_bytes {
                tracing::warn!(budget_bytes, "upload disk budget reached");
                return Err(Error::UploadStorageFull { budget_bytes });
            }
            self.files.write_bytes(&hash, bytes)?;
            self.bytes_on_disk.fetch_add(size, Ordering::Relaxed);
        }
        let attachment = Attachment {
            hash: hash.clone(),
            name,
            content_type: content_type.to_string(),
            size,
        };
        let charged = visitor_usage.map(|(visitor, usage)| {
            let usage = UploadUsage {
                files: usage.files + 1,
                bytes: usage.bytes + size,
            };
            (visitor, usage)
        });
        self.files
            .record_upload(conversation, &attachment, charged)?;
        Ok(attachment)
    }

    /// Forgets the upload rates of visitors not seen lately (memory follows the active visitors).
    pub fn forget_idle_rates(&self) {
        self.visitor_rate.retain_recent();
    }

    /// The attachments `hashes` of `conversation`; a hash uploaded elsewhere is refused, and so are
    /// more than [`MAX_ATTACHMENTS_PER_MESSAGE`].
    pub fn attachments(&self, conversation: &str, hashes: &[String]) -> Result<Vec<Attachment>> {
        if hashes.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(Error::InvalidUpload(format!(
                "a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} files"
            )));
        }
        hashes
            .iter()
            .map(|hash| {
                self.files.attachment(conversation, hash)?.ok_or_else(|| {
                    Error::InvalidUpload(format!("no file `{hash}` in this conversation"))
                })
            })
            .collect()
    }

    /// A file of `conversation` and its bytes.
    pub fn read(&self, conversation: &str, hash: &str) -> Result<(Attachment, Vec<u8>)> {
        let attachment = self
            .files
            .attachment(conversation, hash)?
            .ok_or_else(|| Error::NotFound(format!("no file `{hash}` in this conversation")))?;
        let bytes = self.files.read_bytes(&attachment.hash)?;
        Ok((attachment, bytes))
    }
}

/// Characters that change how text around them is shown without being seen themselves: bidi
/// embeddings, overrides and isolates (U+202E before `txt.exe` in `invoice…txt.exe` makes it read as `invoiceexe.txt`),
/// marks, zero-width characters and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// The last path component without control and invisible formatting characters; a name longer than
/// [`MAX_FILE_NAME_CHARS`] loses the end of its stem, never its extension. Refuses names that are only
/// dots.
fn clean_name(name: &str) -> Result<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(Error::InvalidUpload(format!(
            "`{}` is not a file name",
            name.chars().take(MAX_FILE_NAME_CHARS).collect::<String>()
        )));
    }
    if cleaned.chars().count() <= MAX_FILE_NAME_CHARS {
        return Ok(cleaned.to_string());
    }
    let shortened = match cleaned.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty() && extension.chars().count() <= MAX_EXTENSION_CHARS =>
        {
            let stem_chars = MAX_FILE_NAME_CHARS - extension.chars().count() - 1;
            let stem: String = stem.chars().take(stem_chars).collect();
            format!("{}.{extension}", stem.trim_end())
        }
        _ => cleaned.chars().take(MAX_FILE_NAME_CHARS).collect(),
    };
    Ok(shortened)
}

/// The MIME type the bytes really are, which must be what the extension promises.
fn sniff(bytes: &[u8], extension: &str) -> Result<&'static str> {
    let expected = match extension {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "txt" => "text/plain",
        // Voice messages from WeChat channels.
        "amr" => "audio/amr",
        other => {
            return Err(Error::InvalidUpload(format!(
                "no content check is known for `.{other}` files"
            )))
        }
    };
    let matches = match extension {
        "txt" => std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0),
        _ => infer::get(bytes).is_some_and(|kind| kind.mime_type() == expected),
    };
    if matches {
        Ok(expected)
    } else {
        Err(Error::InvalidUpload(format!(
            "the content is not a `.{extension}` file"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_paths_and_dot_names_are_refused() {
        assert_eq!(clean_name("../../etc/passwd.txt").unwrap(), "passwd.txt");
        assert_eq!(clean_name("C:\\Users\\a\\发票.pdf").unwrap(), "发票.pdf");
        assert!(clean_name("..").is_err());
        assert!(clean_name("dir/").is_err());
    }

    #[test]
    fn bidi_and_control_characters_are_stripped_and_long_names_keep_their_extension() {
        assert_eq!(
            clean_name("invoice\u{202E}txt.exe.txt").unwrap(),
            "invoicetxt.exe.txt"
        );
        assert_eq!(
            clean_name("a\u{2066}b\u{200B}c\u{0}\u{7}.pdf").unwrap(),
            "abc.pdf"
        );
        let long = format!("{}.pdf", "发票".repeat(100));
        let cleaned = clean_name(&long).unwrap();
        assert_eq!(cleaned.chars().count(), MAX_FILE_NAME_CHARS);
        assert!(cleaned.ends_with("票.pdf"), "{cleaned}");
        assert!(clean_name("\u{202E}\u{200B}").is_err());
    }

    #[test]
    fn content_must_match_the_extension() {
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";
        assert_eq!(sniff(png, "png").unwrap(), "image/png");
        assert!(sniff(png, "pdf").is_err());
        assert!(sniff(b"%PDF-1.7\n", "pdf").is_ok());
        assert!(sniff(b"MZ\x90\x00 not an image", "jpg").is_err());
        assert!(sniff("你好".as_bytes(), "txt").is_ok());
        assert!(sniff(b"\x00\x01binary", "txt").is_err());
    }
}
