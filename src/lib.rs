//! kefu: a customer-service desk for Chinese-speaking teams, built around a markdown knowledge base
//! searched with jieba + tantivy.
//!
//! Modules depend one way: `error`/`config` ← `domain` ← `articles`/`storage` ← `search` ← `services`
//! ← `channels` ← `http` ← `cluster` ← `app`/`cli`.
#![warn(missing_docs)]

pub mod app;
pub mod articles;
pub mod channels;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod search;
pub mod services;
pub mod storage;

/// A search allocates and frees thousands of small buffers (postings blocks, term infos, stored
/// documents, response strings) on whichever worker runs it; under concurrent load glibc's malloc
/// spent a fifth of the server's CPU on them, much of it waiting on arena locks. Declared in the
/// library so that `kefu`, the benchmarks and the tests all run the allocator that is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use config::Config;
pub use error::{Error, ErrorCode, Result};
