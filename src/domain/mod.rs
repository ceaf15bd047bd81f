//! Plain data and validation shared by every layer: no IO, no async.

pub mod article;

pub use article::{Article, ArticleId, ArticleStatus, Section};
