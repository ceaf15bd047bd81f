//! Knowledge-base articles as the rest of kefu sees them, after parsing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An article id: its path under `kb/` without `.md` unless the front matter names another.
///
/// Ids become file paths, so anything that could escape `kb/` or name a hidden or reserved file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ArticleId(String);

/// Longest id accepted, in bytes; well under common file-name limits once `.md` is added.
const MAX_ID_BYTES: usize = 200;

impl ArticleId {
    /// Validates an id.
    ///
    /// Returns [`Error::InvalidArticleId`] for empty or over-long ids, absolute paths, `.`/`..` or empty
    /// segments, segments starting with `_` or `.` (reserved for `_dict.txt` and hidden files),
    /// backslashes, control characters and characters that are not portable in file names.
    pub fn parse(raw: &str) -> Result<ArticleId> {
        let refuse = |reason: &str| {
            Err(Error::InvalidArticleId {
                id: raw.escape_debug().to_string(),
                reason: reason.to_string(),
            })
        };
        if raw.is_empty() {
            return refuse("id is empty");
        }
        if raw.len() > MAX_ID_BYTES {
            return refuse("id is longer than 200 bytes");
        }
        if raw.chars().any(char::is_control) {
            return refuse("id contains control characters");
        }
        if raw.starts_with('/') {
            return refuse("id must be relative");
        }
        if raw.contains(['\\', ':', '*', '?', '"', '<', '>', '|']) {
            return refuse("id contains a character not allowed in file names");
        }
        for segment in raw.split('/') {
            if segment.is_empty() || segment.trim() != segment {
                return refuse("id has an empty segment or one with surrounding spaces");
            }
            if segment == "." || segment == ".." {
                return refuse("id must not contain `.` or `..` segments");
            }
            if segment.starts_with('_') || segment.starts_with('.') {
                return refuse("id segments must not start with `_` or `.`");
            }
        }
        Ok(ArticleId(raw.to_string()))
    }

    /// Checks the stricter rules for an id given to a new article (through the editor or the API):
    /// parts separated by `/`, each of lower-case ASCII letters, digits, `-`, `_` and Chinese characters
    /// (CJK ideographs), starting with a letter, digit or Chinese character. Files already in `kb/` keep
    /// the ids their paths give them ([`ArticleId::parse`]); these rules keep new ids readable in URLs and
    /// free of spaces and capitals that differ only in case.
    ///
    /// Returns [`Error::InvalidArticleId`] naming the first offending character or part.
    pub fn check_new(&self) -> Result<()> {
        let refuse = |reason: String| {
            Err(Error::InvalidArticleId {
                id: self.0.escape_debug().to_string(),
                reason,
            })
        };
        for part in self.0.split('/') {
            let Some(first) = part.chars().next() else {
                return refuse("an id part is empty".to_string());
            };
            if let Some(bad) = part.chars().find(|&c| !is_new_id_char(c)) {
                let shown = if bad == ' ' {
                    "a space".to_string()
                } else {
                    format!("`{bad}`")
                };
                return refuse(format!(
                    "{shown} is not allowed: use lower-case letters, digits, `-`, `_` or Chinese characters, and `/` between parts"
                ));
            }
            if first == '-' || first == '_' {
                return refuse(format!(
                    "part `{part}` must start with a letter, digit or Chinese character"
                ));
            }
        }
        Ok(())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArticleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may appear in a new article's id ([`ArticleId::check_new`]).
fn is_new_id_char(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || c == '-'
        || c == '_'
        || matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

/// Whether an article may be suggested to agents and visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArticleStatus {
    /// Visible everywhere.
    #[default]
    Published,
    /// Searchable by editors, never suggested.
    Draft,
}

impl ArticleStatus {
    /// The wire and index name.
    pub fn as_str(self) -> &'static str {
        match self {
            ArticleStatus::Published => "published",
            ArticleStatus::Draft => "draft",
        }
    }

    /// Parses the wire name.
    pub fn from_name(name: &str) -> Option<ArticleStatus> {
        match name {
            "published" => Some(ArticleStatus::Published),
            "draft" => Some(ArticleStatus::Draft),
            _ => None,
        }
    }
}

/// One heading of an article with the paragraph that answers it, so a passage can be suggested
/// instead of a whole article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Section {
    /// The heading text (the article title for text before the first sub-heading).
    pub heading: String,
    /// Heading level, 1 to 6.
    pub level: u8,
    /// The first paragraph (or list, with its markers) under the heading.
    pub answer: String,
    /// All plain text under the heading, up to the next heading, with list markers (`1. `, `- `,
    /// indented two spaces per nesting level) so steps read as steps when sent.
    pub text: String,
}

/// A parsed article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Unique id.
    pub id: ArticleId,
    /// Display title.
    pub title: String,
    /// Category (defaults to the parent folder).
    pub category: String,
    /// Free tags.
    pub tags: Vec<String>,
    /// Words an editor wants the article found by.
    pub keywords: Vec<String>,
    /// Similar questions visitors ask (相似问).
    pub questions: Vec<String>,
    /// Published or draft.
    pub status: ArticleStatus,
    /// Last update as written in the front matter.
    pub updated: Option<String>,
    /// Every heading except the title.
    pub headings: Vec<String>,
    /// Body as plain text, headings excluded.
    pub body: String,
    /// Passages by heading.
    pub sections: Vec<Section>,
    /// Path relative to the knowledge-base folder, with `/` separators.
    pub path: String,
    /// Hex BLAKE3 hash of the file's bytes, for incremental sync.
    pub content_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_accepted() {
        for id in [
            "returns/seven-day-return",
            "退款/如何申请",
            "faq",
            "a/b/c-1_2",
        ] {
            assert_eq!(ArticleId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn new_ids_follow_the_documented_rules() {
        for id in [
            "returns/seven-day-return",
            "退款/如何申请",
            "faq",
            "a/b/c-1_2",
            "售后/v2",
        ] {
            ArticleId::parse(id).unwrap().check_new().unwrap();
        }
        for (id, why) in [
            ("kb/bad id with spaces", "a space"),
            ("Returns/refund", "`R`"),
            ("returns/refund.md", "`.`"),
            ("returns/-draft", "must start with"),
            ("a/b c", "a space"),
            ("退款！", "`！`"),
        ] {
            let error = ArticleId::parse(id).unwrap().check_new().unwrap_err();
            assert_eq!(error.code(), crate::error::ErrorCode::InvalidArticleId);
            assert!(error.to_string().contains(why), "{id}: {error}");
        }
    }

    #[test]
    fn ids_that_could_escape_or_hide_are_refused() {
        for id in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a//b",
            "a/./b",
            "_dict",
            "a/.hidden",
            "tab\there",
            "nul\0",
            "back\\slash",
            "c:drive",
            "trailing/",
        ] {
            let error = ArticleId::parse(id).unwrap_err();
            assert!(
                matches!(error, Error::InvalidArticleId { .. }),
                "{id:?} was accepted"
            );
        }
        assert!(ArticleId::parse(&"x".repeat(201)).is_err());
    }
}
