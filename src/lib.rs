//! kefu: a customer-service desk for Chinese-speaking teams, built around a markdown knowledge base
//! searched with jieba + tantivy.
//!
//! Modules depend one way: `error`/`config` ← `domain` ← `articles`/`storage` ← `search` ← `services`
//! ← `http` ← `app`/`cli`.
#![warn(missing_docs)]

pub mod app;
pub mod articles;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod search;
pub mod services;
pub mod storage;

pub use config::Config;
pub use error::{Error, ErrorCode, Result};
