//! Files sent in a conversation: size and type checks (the content is sniffed and must match the
//! name's extension), storage under `data/files/` by content hash, and per-conversation access.

use std::path::{Path, PathBuf};

use crate::domain::Attachment;
use crate::error::{Error, Result};
use crate::storage;

/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 120;

/// The file store.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    index: sled::Tree,
}

impl Files {
    /// Files under `data_dir/files`, indexed in `index` (conversation, 0, hash → attachment).
    pub fn new(data_dir: &Path, index: sled::Tree) -> Files {
        Files {
            root: data_dir.join("files"),
            index,
        }
    }

    /// Checks and stores an upload for `conversation`.
    pub fn store(
        &self,
        conversation: &str,
        name: &str,
        bytes: &[u8],
        max_bytes: usize,
        allowed: &[String],
    ) -> Result<Attachment> {
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
        let path = self.path_of(&hash);
        if !path.exists() {
            let folder = path.parent().expect("a hash path has a folder");
            std::fs::create_dir_all(folder).map_err(|error| Error::io(folder, error))?;
            crate::articles::write_file_atomically(&path, bytes)?;
        }
        let attachment = Attachment {
            hash: hash.clone(),
            name,
            content_type: content_type.to_string(),
            size: bytes.len() as u64,
        };
        storage::put_json(&self.index, key(conversation, &hash), &attachment)?;
        Ok(attachment)
    }

    /// The attachments `hashes` of `conversation`; a hash uploaded elsewhere is refused.
    pub fn attachments(&self, conversation: &str, hashes: &[String]) -> Result<Vec<Attachment>> {
        hashes
            .iter()
            .map(|hash| {
                storage::get_json(&self.index, key(conversation, hash))?.ok_or_else(|| {
                    Error::InvalidUpload(format!("no file `{hash}` in this conversation"))
                })
            })
            .collect()
    }

    /// A file of `conversation` and its bytes.
    pub fn read(&self, conversation: &str, hash: &str) -> Result<(Attachment, Vec<u8>)> {
        let attachment: Attachment = storage::get_json(&self.index, key(conversation, hash))?
            .ok_or_else(|| Error::NotFound(format!("no file `{hash}` in this conversation")))?;
        let path = self.path_of(&attachment.hash);
        let bytes = std::fs::read(&path).map_err(|error| Error::io(&path, error))?;
        Ok((attachment, bytes))
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }
}

fn key(conversation: &str, hash: &str) -> Vec<u8> {
    let mut key = conversation.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(hash.as_bytes());
    key
}

/// The last path component, without control characters; refuses names that are only dots.
fn clean_name(name: &str) -> Result<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(Error::InvalidUpload(format!("`{name}` is not a file name")));
    }
    Ok(cleaned)
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
