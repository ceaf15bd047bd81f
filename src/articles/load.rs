//! Reading and writing the knowledge-base folder.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::parse::parse_article;
use crate::domain::Article;
use crate::error::{ArticleError, Error, Result};

/// The jieba user dictionary inside the knowledge base.
pub const DICT_FILE: &str = "_dict.txt";
/// The synonym groups inside the knowledge base.
pub const SYNONYMS_FILE: &str = "_synonyms.txt";
/// Display names of categories inside the knowledge base: `folder 名称` lines.
pub const CATEGORIES_FILE: &str = "_categories.txt";

/// Category display names from a [`CATEGORIES_FILE`]: one `category name` pair a line (the name may
/// hold spaces), blank lines and `#` comments skipped; a line without a name is ignored, and a later
/// line for the same category wins.
pub fn parse_category_names(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (category, name) = line.split_once(char::is_whitespace)?;
            let name = name.trim();
            (!name.is_empty()).then(|| (category.to_string(), name.to_string()))
        })
        .collect()
}

/// Everything read from a knowledge-base folder: the articles that parsed and a report for each that did not.
#[derive(Debug, Default)]
pub struct KnowledgeBaseScan {
    /// Parsed articles, in path order, ids unique.
    pub articles: Vec<Article>,
    /// Files that could not be read or parsed, and duplicate ids.
    pub errors: Vec<ArticleError>,
}

/// Whether a `/`-separated path under the knowledge base is an article file: `.md`, and no part of it
/// hidden (`.git`, editors' temporary files) or reserved (`_drafts`, `_dict.txt`).
pub fn is_article(relative: &str) -> bool {
    relative.ends_with(".md")
        && relative
            .split('/')
            .all(|name| !name.is_empty() && !name.starts_with('.') && !name.starts_with('_'))
}

/// Whether a `/`-separated path under the knowledge base is one of its files: an article (see
/// [`is_article`]) or the dictionary, synonyms or category names at its top. Other files (`README`,
/// images, editors' leftovers) are not part of the knowledge base.
pub fn is_knowledge_file(relative: &str) -> bool {
    is_article(relative) || [DICT_FILE, SYNONYMS_FILE, CATEGORIES_FILE].contains(&relative)
}

/// `/`-separated form of `path` relative to `kb_dir`, if it lies inside and is valid UTF-8.
pub fn relative_path(kb_dir: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(kb_dir).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|component| component.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
}

/// Reads and parses one article file.
pub fn read_article_file(kb_dir: &Path, relative: &str) -> Result<Article, ArticleError> {
    let bytes = std::fs::read(kb_dir.join(relative)).map_err(|io_error| ArticleError {
        file: relative.to_string(),
        line: 1,
        reason: format!("cannot read file: {io_error}"),
    })?;
    parse_article(relative, &bytes)
}

/// Paths (relative, `/`-separated, sorted) of every article file under `kb_dir`, and a report for each
/// entry that could not be listed.
///
/// Returns [`Error::Io`] only when the folder itself cannot be read.
pub fn list_article_files(kb_dir: &Path) -> Result<(Vec<String>, Vec<ArticleError>)> {
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in WalkDir::new(kb_dir).follow_links(true).sort_by_file_name() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(walk_error) if walk_error.depth() == 0 => {
                let io_error = walk_error
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("loop"));
                return Err(Error::io(kb_dir, io_error));
            }
            Err(walk_error) => {
                let file = walk_error
                    .path()
                    .and_then(|path| relative_path(kb_dir, path))
                    .unwrap_or_default();
                errors.push(ArticleError {
                    file,
                    line: 1,
                    reason: format!("cannot read: {walk_error}"),
                });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(relative) = relative_path(kb_dir, entry.path()) else {
            let lossy = entry
                .path()
                .strip_prefix(kb_dir)
                .unwrap_or(entry.path())
                .to_string_lossy();
            if lossy.ends_with(".md") {
                errors.push(ArticleError {
                    file: lossy.into_owned(),
                    line: 1,
                    reason: "file name is not valid utf-8".to_string(),
                });
            }
            continue;
        };
        if is_article(&relative) {
            paths.push(relative);
        }
    }
    Ok((paths, errors))
}

/// Keeps one article per id. Ids in `claimed` (id → path) are already taken. Among new claimants the
/// file whose path is the id wins, else the first by path; the others are reported.
pub fn resolve_duplicate_ids(
    mut articles: Vec<Article>,
    claimed: &HashMap<String, String>,
) -> (Vec<Article>, Vec<ArticleError>) {
    articles.sort_by(|a, b| {
        let a_owns = a.path.strip_suffix(".md") == Some(a.id.as_str());
        let b_owns = b.path.strip_suffix(".md") == Some(b.id.as_str());
        b_owns.cmp(&a_owns).then_with(|| a.path.cmp(&b.path))
    });
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut unique = Vec::with_capacity(articles.len());
    let mut errors = Vec::new();
    for article in articles {
        let owner = claimed
            .get(article.id.as_str())
            .filter(|path| **path != article.path)
            .or_else(|| owners.get(article.id.as_str()));
        if let Some(owner) = owner {
            errors.push(ArticleError {
                file: article.path.clone(),
                line: 1,
                reason: format!("id `{}` is already used by {owner}", article.id),
            });
            continue;
        }
        owners.insert(article.id.to_string(), article.path.clone());
        unique.push(article);
    }
    unique.sort_by(|a, b| a.path.cmp(&b.path));
    (unique, errors)
}

/// Reads every article under `kb_dir`. A file that fails is reported and skipped; the rest are returned.
///
/// Returns [`Error::Io`] only when the folder itself cannot be read.
pub fn load_knowledge_base(kb_dir: &Path) -> Result<KnowledgeBaseScan> {
    let (paths, mut errors) = list_article_files(kb_dir)?;
    let mut articles = Vec::with_capacity(paths.len());
    for relative in paths {
        match read_article_file(kb_dir, &relative) {
            Ok(article) => articles.push(article),
            Err(error) => errors.push(error),
        }
    }
    let (articles, duplicate_errors) = resolve_duplicate_ids(articles, &HashMap::new());
    errors.extend(duplicate_errors);
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(KnowledgeBaseScan { articles, errors })
}

/// Writes `contents` to `path` so that readers see either the old or the new file, never a partial one:
/// a temporary file in the same folder is written, synced, then renamed over the target. The file is
/// readable by its owner only (uploads, index copies); see [`write_shared_file_atomically`].
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomically(path, contents, false)
}

/// As [`write_file_atomically`], for files others read too (articles in `kb/`: git, a replica reading
/// a shared folder as another user): an existing file keeps its permissions, a new one gets what the
/// umask gives any new file, instead of tempfile's owner-only 0600.
pub fn write_shared_file_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomically(path, contents, true)
}

fn write_atomically(path: &Path, contents: &[u8], shared: bool) -> Result<()> {
    let folder = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let folder_existed = folder.is_dir();
    std::fs::create_dir_all(&folder).map_err(|error| Error::io(&folder, error))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kefu-write-");
    #[cfg(unix)]
    if shared {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temporary = builder
        .tempfile_in(&folder)
        .map_err(|error| Error::io(&folder, error))?;
    if shared {
        if let Ok(existing) = std::fs::metadata(path) {
            temporary
                .as_file()
                .set_permissions(existing.permissions())
                .map_err(|error| Error::io(path, error))?;
        }
    }
    temporary
        .write_all(contents)
        .map_err(|error| Error::io(path, error))?;
    temporary
        .as_file()
        .sync_all()
        .map_err(|error| Error::io(path, error))?;
    temporary
        .persist(path)
        .map_err(|error| Error::io(path, error.error))?;
    // The rename lives in the folder: sync it (and, for a folder just made, its parent) so that a
    // confirmed save survives a power loss.
    sync_folder(&folder)?;
    if !folder_existed {
        if let Some(parent) = folder.parent() {
            sync_folder(parent)?;
        }
    }
    Ok(())
}

/// Removes `path` and syncs its folder, so that a confirmed delete survives a power loss.
pub fn remove_file_durably(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|error| Error::io(path, error))?;
    if let Some(folder) = path.parent() {
        sync_folder(folder)?;
    }
    Ok(())
}

fn sync_folder(folder: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        std::fs::File::open(folder)
            .and_then(|handle| handle.sync_all())
            .map_err(|error| Error::io(folder, error))?;
    }
    #[cfg(not(unix))]
    let _ = folder;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_files_are_reported_and_the_rest_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path();
        std::fs::create_dir_all(kb.join("returns")).unwrap();
        std::fs::write(kb.join("returns/ok.md"), "# 退货\n\n可以退。").unwrap();
        std::fs::write(kb.join("returns/broken.md"), "---\ntitle: [unclosed\n---\n").unwrap();
        std::fs::write(kb.join("dup.md"), "---\nid: returns/ok\n---\n重复").unwrap();
        std::fs::write(kb.join("_dict.txt"), "运费险 100 n").unwrap();
        std::fs::create_dir_all(kb.join(".git")).unwrap();
        std::fs::write(kb.join(".git/x.md"), "ignored").unwrap();
        std::fs::write(kb.join("notes.txt"), "not an article").unwrap();

        let scan = load_knowledge_base(kb).unwrap();
        let ids: Vec<&str> = scan
            .articles
            .iter()
            .map(|article| article.id.as_str())
            .collect();
        assert_eq!(ids, ["returns/ok"]);
        let files: Vec<&str> = scan
            .errors
            .iter()
            .map(|error| error.file.as_str())
            .collect();
        assert_eq!(files, ["dup.md", "returns/broken.md"]);
        assert!(scan.errors[0]
            .reason
            .contains("already used by returns/ok.md"));
        assert_eq!(scan.errors[1].line, 2);
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.md");
        write_file_atomically(&path, b"one").unwrap();
        write_file_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers = std::fs::read_dir(dir.path().join("a")).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
