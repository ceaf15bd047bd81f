//! The one integration-test binary (one link instead of one per file): the real router over a real
//! tantivy index in temporary folders, index sync across restarts, the file watcher, and the CLI.

mod common;

#[path = "integration/abstention.rs"]
mod abstention;
#[path = "integration/accounts.rs"]
mod accounts;
#[path = "integration/admin.rs"]
mod admin;
#[path = "integration/channels.rs"]
mod channels;
#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/cluster.rs"]
mod cluster;
#[path = "integration/cluster_sync.rs"]
mod cluster_sync;
#[path = "integration/conversations.rs"]
mod conversations;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/desk_load.rs"]
mod desk_load;
#[path = "integration/http_articles.rs"]
mod http_articles;
#[path = "integration/http_metrics.rs"]
mod http_metrics;
#[path = "integration/http_openapi.rs"]
mod http_openapi;
#[path = "integration/http_search.rs"]
mod http_search;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/postgres.rs"]
mod postgres;
#[path = "integration/quick_replies.rs"]
mod quick_replies;
#[path = "integration/stats.rs"]
mod stats;
#[path = "integration/sync.rs"]
mod sync;
#[path = "integration/visitors.rs"]
mod visitors;
#[path = "integration/watch.rs"]
mod watch;
#[path = "integration/webhooks.rs"]
mod webhooks;
