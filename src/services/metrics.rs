//! Prometheus metrics: the instruments the services observe (messages, search and suggestion
//! latency) and the rendering of a scrape. Figures that already live in the services (queue lengths,
//! open sockets, index segments, database size) are not kept here: the scrape reads them from their
//! owners and hands them in as [`DeskGauges`], so they can never drift. Imports nothing internal but
//! `error` and `domain`.

use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::SenderKind;
use crate::error::{Error, Result};

/// Content type of [`Metrics::render`]: prometheus-client writes OpenMetrics text, which Prometheus
/// asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
const PREFIX: &str = "kefu";

/// Who wrote a message, as a label value.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variant names are the label values
enum MessageKind {
    visitor,
    agent,
    internal,
    system,
}

impl From<SenderKind> for MessageKind {
    fn from(kind: SenderKind) -> MessageKind {
        match kind {
            SenderKind::Visitor => MessageKind::visitor,
            SenderKind::Agent => MessageKind::agent,
            SenderKind::Internal => MessageKind::internal,
            SenderKind::System => MessageKind::system,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: MessageKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SocketLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    /// The group's id: stable across renames, so a series survives one.
    group: String,
    /// The group's name, for dashboards.
    name: String,
}

/// Figures read from the services at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeskGauges {
    /// Conversations waiting in each skill group's queue: (group id, group name, length). Every group
    /// is listed, empty ones with 0, so a dashboard sees a queue drain to zero rather than vanish.
    /// Conversations that asked for no group are under id `none`.
    pub queues: Vec<(String, String, u64)>,
    /// Conversations an agent is serving.
    pub active_conversations: u64,
    /// Open visitor pages (sockets).
    pub visitor_sockets: u64,
    /// Open agent tabs (sockets).
    pub agent_sockets: u64,
    /// Segments of the knowledge-base index.
    pub index_segments: u64,
    /// Articles in the index (drafts included).
    pub articles: u64,
    /// Bytes the database takes on disk.
    pub db_bytes: u64,
}

/// The instruments observed by the services, in one registry; shared by `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<KindLabel, Counter>,
    search_duration: Histogram,
    suggest_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Latency buckets from 0.5 ms to about 4 s: searches take milliseconds, a slow one is worth seeing.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 14)
}

impl Metrics {
    /// Fresh instruments, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let messages = Family::<KindLabel, Counter>::default();
        // Every kind appears at zero from the first scrape, so `rate()` has a starting point.
        for kind in [
            SenderKind::Visitor,
            SenderKind::Agent,
            SenderKind::Internal,
            SenderKind::System,
        ] {
            messages
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(0);
        }
        registry.register(
            "messages",
            "Messages stored in conversations, by who wrote them",
            messages.clone(),
        );
        let search_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "search_duration",
            "Knowledge-base searches (API and agent search box)",
            Unit::Seconds,
            search_duration.clone(),
        );
        let suggest_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "suggest_duration",
            "Suggested replies for agents (articles and quick replies)",
            Unit::Seconds,
            suggest_duration.clone(),
        );
        Metrics {
            registry,
            messages,
            search_duration,
            suggest_duration,
        }
    }

    /// A message was stored (resends that stored nothing are not counted).
    pub fn message_stored(&self, kind: SenderKind) {
        self.messages
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// A knowledge-base search took `elapsed`.
    pub fn search_done(&self, elapsed: Duration) {
        self.search_duration.observe(elapsed.as_secs_f64());
    }

    /// A suggestion took `elapsed`.
    pub fn suggest_done(&self, elapsed: Duration) {
        self.suggest_duration.observe(elapsed.as_secs_f64());
    }

    /// The scrape body: the instruments, then `gauges`, in OpenMetrics text ([`CONTENT_TYPE`]).
    ///
    /// Returns [`Error::Internal`] only if encoding fails, which writing to a `String` does not.
    pub fn render(&self, gauges: &DeskGauges) -> Result<String> {
        let mut body = String::with_capacity(4096);
        encode_registry(&mut body, &self.registry).map_err(encoding_failed)?;
        encode_registry(&mut body, &gauge_registry(gauges)).map_err(encoding_failed)?;
        encode_eof(&mut body).map_err(encoding_failed)?;
        Ok(body)
    }
}

fn encoding_failed(error: std::fmt::Error) -> Error {
    Error::Internal(format!("encoding metrics: {error}"))
}

/// The scrape-time figures as a registry of its own, built per scrape (a few allocations).
fn gauge_registry(gauges: &DeskGauges) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let queues = Family::<GroupLabel, Gauge>::default();
    for (group, name, length) in &gauges.queues {
        queues
            .get_or_create(&GroupLabel {
                group: group.clone(),
                name: name.clone(),
            })
            .set(saturating_i64(*length));
    }
    registry.register(
        "queue_length",
        "Conversations waiting for an agent, by skill group",
        queues,
    );
    let sockets = Family::<SocketLabel, Gauge>::default();
    for (kind, count) in [
        ("visitor", gauges.visitor_sockets),
        ("agent", gauges.agent_sockets),
    ] {
        sockets
            .get_or_create(&SocketLabel { kind })
            .set(saturating_i64(count));
    }
    registry.register(
        "connected_sockets",
        "Open WebSockets: visitor pages and agent tabs",
        sockets,
    );
    let single = [
        (
            "active_conversations",
            "Conversations an agent is serving",
            gauges.active_conversations,
        ),
        (
            "index_segments",
            "Segments of the knowledge-base index",
            gauges.index_segments,
        ),
        (
            "articles",
            "Articles in the knowledge-base index, drafts included",
            gauges.articles,
        ),
    ];
    for (name, help, value) in single {
        let gauge = Gauge::<i64>::default();
        gauge.set(saturating_i64(value));
        registry.register(name, help, gauge);
    }
    let db_bytes = Gauge::<i64>::default();
    db_bytes.set(saturating_i64(gauges.db_bytes));
    registry.register_with_unit(
        "db_size",
        "Size of the database on disk (sled files, or the PostgreSQL tables)",
        Unit::Bytes,
        db_bytes,
    );
    registry
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_holds_the_instruments_and_the_gauges() {
        let metrics = Metrics::new();
        metrics.message_stored(SenderKind::Visitor);
        metrics.message_stored(SenderKind::Visitor);
        metrics.search_done(Duration::from_millis(3));
        let body = metrics
            .render(&DeskGauges {
                queues: vec![("7".into(), "售后".into(), 2)],
                db_bytes: 1024,
                ..DeskGauges::default()
            })
            .unwrap();
        assert!(
            body.contains("kefu_messages_total{kind=\"visitor\"} 2"),
            "{body}"
        );
        assert!(
            body.contains("kefu_messages_total{kind=\"system\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("kefu_search_duration_seconds_count 1"),
            "{body}"
        );
        assert!(
            body.contains("kefu_suggest_duration_seconds_count 0"),
            "{body}"
        );
        assert!(
            body.contains("kefu_queue_length{group=\"7\",name=\"售后\"} 2"),
            "{body}"
        );
        assert!(body.contains("kefu_db_size_bytes 1024"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    }
}
