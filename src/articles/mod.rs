//! Markdown files → [`crate::domain::Article`]: front matter, plain text, headings and answer passages
//! ([`parse`]), safe HTML of bounded nesting ([`render`]), and reading a whole knowledge-base folder with per-file error reports ([`load`]).

mod load;
mod parse;
mod render;

pub use load::{
    is_article, is_knowledge_file, list_article_files, load_knowledge_base, parse_category_names,
    read_article_file, relative_path, remove_file_durably, resolve_duplicate_ids,
    write_file_atomically, write_shared_file_atomically, KnowledgeBaseScan, CATEGORIES_FILE,
    DICT_FILE, SYNONYMS_FILE,
};
pub use parse::parse_article;
pub use render::{render_html, MAX_RENDERED_DEPTH};
