//! The knowledge base's own files, edited in the browser: the user dictionary (`kb/_dict.txt`), the
//! synonym groups (`kb/_synonyms.txt`) and the category display names (`kb/_categories.txt`). Editors
//! and admins. A saved dictionary or synonym file is applied before the answer (a new dictionary
//! re-indexes every article), as when the file changes on disk; every change is audited.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::articles::{parse_category_names, CATEGORIES_FILE, DICT_FILE, SYNONYMS_FILE};
use crate::domain::AuditKind;
use crate::error::{Error, Result};
use crate::http::access::{CanEditArticles, ClientIp};
use crate::http::error::ErrorBody;
use crate::http::extract::AppJson;
use crate::http::routes::admin::audit_change;
use crate::http::{off_thread, AppState};

/// Longest dictionary or synonym file, in bytes.
pub const MAX_TERMS_FILE_BYTES: usize = 256 << 10;
/// Most lines of a dictionary or synonym file.
pub const MAX_TERMS_FILE_LINES: usize = 10_000;
/// Longest dictionary word or synonym, in characters.
pub const MAX_TERM_CHARS: usize = 20;
/// Most words in one synonym group.
pub const MAX_SYNONYM_GROUP: usize = 20;
/// Longest category id, in characters.
pub const MAX_CATEGORY_ID_CHARS: usize = 64;
/// Longest category display name, in characters.
pub const MAX_CATEGORY_NAME_CHARS: usize = 32;
/// Most category names.
pub const MAX_CATEGORY_NAMES: usize = 500;

/// Routes under `/api/v1/kb/dictionary`, `/api/v1/kb/synonyms` and `/api/v1/kb/category-names`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_dictionary, put_dictionary))
        .routes(routes!(get_synonyms, put_synonyms))
        .routes(routes!(get_category_names, put_category_names))
}

/// A dictionary or synonym file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TermsFile {
    /// The file's text, one entry a line; `#` starts a comment line.
    text: String,
}

/// A saved dictionary or synonym file and what applying it did.
#[derive(Debug, Serialize, ToSchema)]
struct TermsSaved {
    /// The file as saved.
    text: String,
    /// Articles indexed again because the dictionary changed (0 when only synonyms changed or
    /// nothing did).
    reindexed: usize,
}

fn kb_file(state: &AppState, name: &str) -> PathBuf {
    state.knowledge.kb_dir().join(name)
}

fn read_kb_file(state: &AppState, name: &str) -> Result<String> {
    let path = kb_file(state, name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim_start_matches('\u{feff}').to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(Error::io(&path, error)),
    }
}

/// The lines that hold entries (not blank, not comments), with their 1-based numbers.
fn entry_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn check_terms_file(text: &str) -> Result<()> {
    if text.len() > MAX_TERMS_FILE_BYTES || text.lines().count() > MAX_TERMS_FILE_LINES {
        return Err(Error::InvalidInput(format!(
            "the file is at most {MAX_TERMS_FILE_LINES} lines and {MAX_TERMS_FILE_BYTES} bytes"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::InvalidInput(
            "the file cannot hold control characters".into(),
        ));
    }
    Ok(())
}

/// Each entry is `word [frequency [tag]]`: a word of 1-20 characters, a whole-number frequency, a tag
/// of ASCII letters.
fn check_dictionary(text: &str) -> Result<()> {
    check_terms_file(text)?;
    for (line, entry) in entry_lines(text) {
        let parts: Vec<&str> = entry.split_whitespace().collect();
        let word = parts[0];
        if word.chars().count() > MAX_TERM_CHARS {
            return Err(Error::InvalidInput(format!(
                "dictionary line {line}: the word `{word}` is longer than {MAX_TERM_CHARS} characters"
            )));
        }
        if parts.len() > 3 {
            return Err(Error::InvalidInput(format!(
                "dictionary line {line}: expected `word [frequency [tag]]`"
            )));
        }
        if let Some(frequency) = parts.get(1) {
            if frequency.parse::<u32>().is_err() {
                return Err(Error::InvalidInput(format!(
                    "dictionary line {line}: the frequency `{frequency}` is not a whole number"
                )));
            }
        }
        if let Some(tag) = parts.get(2) {
            if tag.len() > 8 || !tag.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(Error::InvalidInput(format!(
                    "dictionary line {line}: the tag `{tag}` is not 1-8 letters"
                )));
            }
        }
    }
    Ok(())
}

/// Each entry is a group of 2-20 different words of 1-20 characters, separated by `,` `，` or `、`.
fn check_synonyms(text: &str) -> Result<()> {
    check_terms_file(text)?;
    for (line, entry) in entry_lines(text) {
        let mut words: Vec<&str> = Vec::new();
        for word in entry.split([',', '，', '、']).map(str::trim) {
            if word.is_empty() {
                continue;
            }
            if word.chars().count() > MAX_TERM_CHARS {
                return Err(Error::InvalidInput(format!(
                    "synonyms line {line}: the word `{word}` is longer than {MAX_TERM_CHARS} characters"
                )));
            }
            if !words.contains(&word) {
                words.push(word);
            }
        }
        if words.len() < 2 || words.len() > MAX_SYNONYM_GROUP {
            return Err(Error::InvalidInput(format!(
                "synonyms line {line}: a group needs 2-{MAX_SYNONYM_GROUP} different words separated by commas"
            )));
        }
    }
    Ok(())
}

/// `n lines → m lines` for the audit log.
fn size_change(before: &str, after: &str) -> String {
    let count = |text: &str| entry_lines(text).count();
    format!("{} entries → {} entries", count(before), count(after))
}

/// Saves a dictionary or synonym file, applies it and audits the change.
async fn save_terms(
    state: AppState,
    ip: Option<std::net::IpAddr>,
    caller: crate::services::accounts::Caller,
    file: &'static str,
    text: String,
) -> Result<TermsSaved> {
    let mut text = text.replace("\r\n", "\n");
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let before = read_kb_file(&state, file)?;
    let saved = text.clone();
    let report = off_thread(&state.knowledge, move |knowledge| {
        knowledge.write_kb_file(file, saved.as_bytes())?;
        knowledge.reload_analysis()
    })
    .await?;
    if before != text {
        audit_change(
            &state,
            AuditKind::KnowledgeChanged,
            format!("kb:{file}"),
            caller.actor(ip),
            size_change(&before, &text),
        )
        .await?;
    }
    Ok(TermsSaved {
        text,
        reindexed: report.added + report.updated,
    })
}

/// The user dictionary (`kb/_dict.txt`): words jieba keeps whole, `word [frequency [tag]]` a line.
#[utoipa::path(
    get,
    path = "/api/v1/kb/dictionary",
    tag = "kb",
    security(("session" = [])),
    responses(
        (status = 200, description = "The file's text (empty when there is none)", body = TermsFile),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn get_dictionary(
    State(state): State<AppState>,
    CanEditArticles(_): CanEditArticles,
) -> Result<Json<TermsFile>> {
    Ok(Json(TermsFile {
        text: read_kb_file(&state, DICT_FILE)?,
    }))
}

/// Replaces the user dictionary and re-indexes every article with it before answering.
#[utoipa::path(
    put,
    path = "/api/v1/kb/dictionary",
    tag = "kb",
    request_body = TermsFile,
    security(("session" = [])),
    responses(
        (status = 200, description = "Saved and applied", body = TermsSaved),
        (status = 400, description = "`invalid_input` (names the line; nothing is saved) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn put_dictionary(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    CanEditArticles(caller): CanEditArticles,
    AppJson(file): AppJson<TermsFile>,
) -> Result<Json<TermsSaved>> {
    check_dictionary(&file.text)?;
    Ok(Json(
        save_terms(state, ip, caller, DICT_FILE, file.text).await?,
    ))
}

/// The synonym groups (`kb/_synonyms.txt`): one group of interchangeable words a line.
#[utoipa::path(
    get,
    path = "/api/v1/kb/synonyms",
    tag = "kb",
    security(("session" = [])),
    responses(
        (status = 200, description = "The file's text (empty when there is none)", body = TermsFile),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn get_synonyms(
    State(state): State<AppState>,
    CanEditArticles(_): CanEditArticles,
) -> Result<Json<TermsFile>> {
    Ok(Json(TermsFile {
        text: read_kb_file(&state, SYNONYMS_FILE)?,
    }))
}

/// Replaces the synonym groups; searches use them as soon as this answers.
#[utoipa::path(
    put,
    path = "/api/v1/kb/synonyms",
    tag = "kb",
    request_body = TermsFile,
    security(("session" = [])),
    responses(
        (status = 200, description = "Saved and applied", body = TermsSaved),
        (status = 400, description = "`invalid_input` (names the line; nothing is saved) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn put_synonyms(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    CanEditArticles(caller): CanEditArticles,
    AppJson(file): AppJson<TermsFile>,
) -> Result<Json<TermsSaved>> {
    check_synonyms(&file.text)?;
    Ok(Json(
        save_terms(state, ip, caller, SYNONYMS_FILE, file.text).await?,
    ))
}

/// Category display names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CategoryNames {
    /// Category (as articles carry it, e.g. `after-sales`) → display name (`售后服务`).
    names: BTreeMap<String, String>,
}

/// The category display names of `kb/_categories.txt`.
#[utoipa::path(
    get,
    path = "/api/v1/kb/category-names",
    tag = "kb",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every category that has a display name", body = CategoryNames),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn get_category_names(
    State(state): State<AppState>,
    CanEditArticles(_): CanEditArticles,
) -> Json<CategoryNames> {
    Json(CategoryNames {
        names: state.knowledge.category_names(),
    })
}

/// Replaces the category display names (a category left out shows its id again).
#[utoipa::path(
    put,
    path = "/api/v1/kb/category-names",
    tag = "kb",
    request_body = CategoryNames,
    security(("session" = [])),
    responses(
        (status = 200, description = "The names as saved", body = CategoryNames),
        (status = 400, description = "`invalid_input` (a category id with spaces, an empty or long name; nothing is saved) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused, or neither an editor nor an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn put_category_names(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    CanEditArticles(caller): CanEditArticles,
    AppJson(request): AppJson<CategoryNames>,
) -> Result<Json<CategoryNames>> {
    if request.names.len() > MAX_CATEGORY_NAMES {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_CATEGORY_NAMES} category names"
        )));
    }
    let mut text = String::from("# 分类显示名称：每行「分类 名称」（由管理后台保存）\n");
    for (category, name) in &request.names {
        let category_ok = !category.is_empty()
            && category.chars().count() <= MAX_CATEGORY_ID_CHARS
            && !category
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#');
        if !category_ok {
            return Err(Error::InvalidInput(format!(
                "category `{category}` must be 1-{MAX_CATEGORY_ID_CHARS} characters without spaces or `#`"
            )));
        }
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_CATEGORY_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(Error::InvalidInput(format!(
                "the name of category `{category}` must be 1-{MAX_CATEGORY_NAME_CHARS} characters"
            )));
        }
        text.push_str(&format!("{category} {name}\n"));
    }
    let before = state.knowledge.category_names();
    off_thread(&state.knowledge, move |knowledge| {
        knowledge.write_kb_file(CATEGORIES_FILE, text.as_bytes())
    })
    .await?;
    let after = state.knowledge.category_names();
    let mut changes = Vec::new();
    for (category, name) in &after {
        match before.get(category) {
            Some(old) if old == name => {}
            old => changes.push(format!(
                "{category}: {} → {name}",
                old.map_or("—", String::as_str)
            )),
        }
    }
    for (category, old) in &before {
        if !after.contains_key(category) {
            changes.push(format!("{category}: {old} → —"));
        }
    }
    if !changes.is_empty() {
        audit_change(
            &state,
            AuditKind::KnowledgeChanged,
            format!("kb:{CATEGORIES_FILE}"),
            caller.actor(ip),
            changes.join("; "),
        )
        .await?;
    }
    // Read back through the same parser the rest of kefu uses, so the answer is what others see.
    let names = parse_category_names(&read_kb_file(&state, CATEGORIES_FILE)?);
    Ok(Json(CategoryNames { names }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_and_synonym_lines_are_checked_with_their_numbers() {
        assert!(check_dictionary("# 注释\n运费险 1000 n\n\n七天无理由\n").is_ok());
        let error = check_dictionary("运费险 1000 n\n价保 很多\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(check_dictionary("a 1 n extra\n").is_err());
        assert!(check_synonyms("退款,退钱，返款\n发票、收据\n").is_ok());
        let error = check_synonyms("退款,退钱\n发票\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
