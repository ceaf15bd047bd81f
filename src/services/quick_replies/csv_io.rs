//! Import and export of quick replies as CSV (UTF-8 with a BOM, which Excel needs to read Chinese) and
//! JSON. An import reports every bad row with its line number and stores the rest. CSV cells are
//! escaped against formula injection (`services::spreadsheet`), and an import of an export gives back
//! the same replies.

use serde::{Deserialize, Serialize};

use super::{QuickReplyService, ReplyInput, ScopeInput};
use crate::domain::{AccountId, GroupId, QuickReply, ReplyScope};
use crate::error::{Error, Result};
use crate::services::spreadsheet::{escape_cell, unescape_cell};

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 6] = ["scope", "title", "content", "category", "shortcut", "tags"];
const BOM: &str = "\u{feff}";

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// Line of the file (CSV, counting the header as 1) or position in the array (JSON, from 1).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows stored.
    pub imported: usize,
    /// Rows refused.
    pub errors: Vec<RowError>,
}

/// One reply in a JSON export/import.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRecord {
    /// `team`, `group:<id>` or `personal`.
    pub scope: String,
    /// Title.
    pub title: String,
    /// Content.
    pub content: String,
    /// Category path.
    #[serde(default)]
    pub category: String,
    /// Shortcut.
    #[serde(default)]
    pub shortcut: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn scope_text(scope: ReplyScope) -> String {
    match scope {
        ReplyScope::Personal { .. } => "personal".to_string(),
        other => other.key(),
    }
}

fn parse_scope(text: &str) -> std::result::Result<ScopeInput, String> {
    let text = text.trim();
    match text {
        "team" | "" => Ok(ScopeInput::Team),
        "personal" => Ok(ScopeInput::Personal),
        _ => text
            .strip_prefix("group:")
            .and_then(|id| id.trim().parse().ok())
            .map(|id| ScopeInput::Group { group: GroupId(id) })
            .ok_or_else(|| format!("scope `{text}` is not team, personal or group:<id>")),
    }
}

impl ReplyRecord {
    fn from_reply(reply: &QuickReply) -> ReplyRecord {
        ReplyRecord {
            scope: scope_text(reply.scope),
            title: reply.title.clone(),
            content: reply.content.clone(),
            category: reply.category.clone(),
            shortcut: reply.shortcut.clone(),
            tags: reply.tags.clone(),
        }
    }

    fn into_input(self) -> std::result::Result<ReplyInput, String> {
        Ok(ReplyInput {
            scope: parse_scope(&self.scope)?,
            title: self.title,
            content: self.content,
            category: self.category,
            shortcut: self.shortcut.filter(|code| !code.trim().is_empty()),
            tags: self.tags,
        })
    }
}

/// CSV bytes (with a BOM) of `replies`.
pub fn export_csv(replies: &[QuickReply]) -> Result<Vec<u8>> {
    let failed = |error: &dyn std::fmt::Display| Error::Internal(format!("writing CSV: {error}"));
    let mut writer = csv::Writer::from_writer(BOM.as_bytes().to_vec());
    writer
        .write_record(CSV_HEADER)
        .map_err(|error| failed(&error))?;
    for reply in replies {
        let record = ReplyRecord::from_reply(reply);
        let cells = [
            record.scope,
            record.title,
            record.content,
            record.category,
            record.shortcut.unwrap_or_default(),
            record.tags.join("|"),
        ];
        writer
            .write_record(cells.iter().map(|cell| escape_cell(cell).into_owned()))
            .map_err(|error| failed(&error))?;
    }
    writer.into_inner().map_err(|error| failed(&error))
}

/// JSON array of `replies`.
pub fn export_json(replies: &[QuickReply]) -> Vec<ReplyRecord> {
    replies.iter().map(ReplyRecord::from_reply).collect()
}

impl QuickReplyService {
    /// Imports a CSV file. The file as a whole must be UTF-8 with the expected header; each row is
    /// then checked on its own.
    pub fn import_csv(
        &self,
        bytes: &[u8],
        author: AccountId,
        may_write: &dyn Fn(ReplyScope) -> Result<()>,
    ) -> Result<ImportReport> {
        let text = std::str::from_utf8(bytes).map_err(|error| {
            Error::InvalidImport(format!(
                "the file is not UTF-8 (byte {}); save it as CSV UTF-8",
                error.valid_up_to()
            ))
        })?;
        let text = text.strip_prefix(BOM).unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|error| Error::InvalidImport(format!("unreadable header: {error}")))?
            .iter()
            .map(|name| name.trim().to_string())
            .collect();
        if header != CSV_HEADER {
            return Err(Error::InvalidImport(format!(
                "the header must be `{}`, found `{}`",
                CSV_HEADER.join(","),
                header.join(",")
            )));
        }
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for record in reader.records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    let line = error
                        .position()
                        .map_or(0, |position| position.line() as usize);
                    errors.push(RowError {
                        line,
                        reason: format!("unreadable row: {error}"),
                    });
                    continue;
                }
            };
            let line = record
                .position()
                .map_or(0, |position| position.line() as usize);
            if record.len() != CSV_HEADER.len() {
                errors.push(RowError {
                    line,
                    reason: format!("{} columns, expected {}", record.len(), CSV_HEADER.len()),
                });
                continue;
            }
            let cell = |index: usize| unescape_cell(&record[index]).to_string();
            let record = ReplyRecord {
                scope: cell(0),
                title: cell(1),
                content: cell(2),
                category: cell(3),
                shortcut: Some(cell(4)),
                tags: unescape_cell(&record[5])
                    .split('|')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            match record.into_input() {
                Ok(input) => rows.push((line, input)),
                Err(reason) => errors.push(RowError { line, reason }),
            }
        }
        let mut report = self.import_rows(rows, author, may_write)?;
        report.errors.extend(errors);
        report.errors.sort_by_key(|error| error.line);
        Ok(report)
    }

    /// Imports a JSON array of [`ReplyRecord`]s; positions count from 1.
    pub fn import_json(
        &self,
        bytes: &[u8],
        author: AccountId,
        may_write: &dyn Fn(ReplyScope) -> Result<()>,
    ) -> Result<ImportReport> {
        let values: Vec<serde_json::Value> = serde_json::from_slice(bytes)
            .map_err(|error| Error::InvalidImport(format!("not a JSON array: {error}")))?;
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            let line = index + 1;
            match serde_json::from_value::<ReplyRecord>(value)
                .map_err(|error| error.to_string())
                .and_then(ReplyRecord::into_input)
            {
                Ok(input) => rows.push((line, input)),
                Err(reason) => errors.push(RowError { line, reason }),
            }
        }
        let mut report = self.import_rows(rows, author, may_write)?;
        report.errors.extend(errors);
        report.errors.sort_by_key(|error| error.line);
        Ok(report)
    }
}
