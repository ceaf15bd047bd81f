//! Use cases over the index and the knowledge-base folder, independent of HTTP.

pub mod accounts;
pub mod agent_messages;
pub mod assist;
pub mod captcha;
pub mod clock;
pub mod conversations;
pub mod images;
pub mod knowledge;
pub mod metrics;
pub mod quick_replies;
mod rendered;
pub mod secrets;
pub mod settings;
pub mod spreadsheet;
pub mod stats;
pub mod suggestions;
pub mod visitors;
mod watch;
pub mod webhooks;

pub use accounts::AccountService;
pub use assist::AssistService;
pub use clock::{Clock, ManualClock, SystemClock};
pub use conversations::ConversationService;
pub use knowledge::{
    rebuild_index, Analysis, ArticleView, KbChangeListener, KnowledgeService, SearchQuery,
    SearchResults, SyncReport,
};
pub use metrics::Metrics;
pub use quick_replies::QuickReplyService;
pub use watch::watch_knowledge_base;
