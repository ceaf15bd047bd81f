//! Several nodes through a real NATS server (`KEFU_TEST_NATS_URL`): the knowledge base replicated
//! through a key-value bucket, stored messages through a stream into every node's history index.
//! Each test uses a bucket or stream of its own and deletes it at the end.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use kefu::articles::{DICT_FILE, SYNONYMS_FILE};
use kefu::cluster::kb_sync::{KbSync, KbSyncConfig};
use kefu::cluster::message_log::{MessageLog, MessageLogConfig};
use kefu::cluster::Node;
use kefu::domain::{Message, SenderKind};
use kefu::search::{Analyzer, MessageIndex, WriterOptions, INDEX_DICT_COPY};
use kefu::services::conversations::StoredMessageSink;
use kefu::services::{watch_knowledge_base, KnowledgeService, SearchQuery};

use crate::common::{nats_url_or_skip, DeleteStream, TestDirs, FIXTURES, PUBLISHED_IDS, REFUND};

/// How long a test waits for a change to reach another node. The 2 s is a speed target,
/// measured (the times are printed and recorded in docs/ARCHITECTURE.md), not asserted: a loaded CI
/// machine must not fail a test that is about whether replication happens.
const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` every 20 ms for up to [`PATIENCE`]; returns how long it took, or `None` if it
/// never held.
async fn wait_for<F, Fut>(mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", fastrand::u64(..))
}

async fn node(url: &str, id: &str) -> Node {
    let nats = async_nats::connect(url)
        .await
        .unwrap_or_else(|error| panic!("connecting to NATS at {url}: {error}"));
    let jetstream = async_nats::jetstream::new(nats.clone());
    Node {
        cluster: "kefu-test".to_string(),
        id: id.to_string(),
        advertise_url: format!("http://{id}.invalid"),
        nats,
        jetstream,
    }
}

fn open_knowledge(dirs: &TestDirs) -> Arc<KnowledgeService> {
    let (service, _) = KnowledgeService::open(
        &dirs.kb,
        &dirs.index,
        dirs.config().search,
        WriterOptions::serving(),
    )
    .unwrap_or_else(|error| panic!("opening the knowledge base: {error}"));
    Arc::new(service)
}

fn hit_ids(service: &KnowledgeService, text: &str) -> Vec<String> {
    service
        .search(&SearchQuery {
            text: text.to_string(),
            ..SearchQuery::default()
        })
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

fn listed(service: &KnowledgeService) -> Vec<String> {
    let mut ids: Vec<String> = service
        .list(None)
        .unwrap()
        .into_iter()
        .map(|article| article.id)
        .collect();
    ids.sort();
    ids
}

/// Every fixture's id (drafts are listed too), sorted.
fn fixture_ids() -> Vec<String> {
    let mut ids: Vec<String> = PUBLISHED_IDS.iter().map(|id| id.to_string()).collect();
    ids.push("returns/trade-in".to_string());
    ids.sort();
    ids
}

fn read(dir: &Path, relative: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(relative)).ok()
}

const INSTALLMENT: &str = "---
id: faq/installment
title: 分期付款
---

# 分期付款

支持信用卡分期付款，三期免息。
";

const INSTALLMENT_EDITED: &str = "---
id: faq/installment
title: 分期付款
---

# 分期付款

现在支持以旧换新补贴叠加分期。
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_knowledge_base_is_replicated_through_the_bucket() {
    let Some(url) = nats_url_or_skip("cluster_knowledge_base_is_replicated_through_the_bucket")
    else {
        return;
    };
    let config = KbSyncConfig {
        bucket: unique("kefu_kb_test_"),
        max_bytes: 64 << 20,
    };
    let _cleanup = DeleteStream {
        url: url.clone(),
        stream: format!("KV_{}", config.bucket),
    };

    // Node A starts with the fixtures and fills the empty bucket.
    let dirs_a = TestDirs::with_fixtures();
    let knowledge_a = open_knowledge(&dirs_a);
    let sync_a = KbSync::start_with(
        &node(&url, "a").await,
        Arc::clone(&knowledge_a),
        config.clone(),
    )
    .await
    .unwrap();
    assert_eq!(sync_a.bucket(), config.bucket);

    // Node B starts empty and catches up before `start` returns; its file watcher runs, as when
    // serving, so files written from the bucket are re-read (and must not come back as changes).
    let dirs_b = TestDirs::empty();
    let knowledge_b = open_knowledge(&dirs_b);
    assert!(listed(&knowledge_b).is_empty());
    let _sync_b = KbSync::start_with(
        &node(&url, "b").await,
        Arc::clone(&knowledge_b),
        config.clone(),
    )
    .await
    .unwrap();
    let _watcher_b = watch_knowledge_base(Arc::clone(&knowledge_b)).unwrap();
    assert_eq!(listed(&knowledge_b), fixture_ids());
    assert_eq!(
        read(&dirs_b.kb, "returns/refund.md").as_deref(),
        Some(REFUND)
    );
    assert_eq!(
        read(&dirs_b.kb, DICT_FILE),
        read(&dirs_a.kb, DICT_FILE),
        "the dictionary came along"
    );
    assert_eq!(
        hit_ids(&knowledge_b, "运费险").first().map(String::as_str),
        Some("shipping/freight-insurance")
    );

    // An article saved through A is searchable on B.
    assert!(hit_ids(&knowledge_b, "信用卡分期").is_empty());
    knowledge_a
        .put("faq/installment", INSTALLMENT.to_string(), None)
        .await
        .unwrap();
    let took = wait_for(|| async {
        hit_ids(&knowledge_b, "信用卡分期")
            .first()
            .map(String::as_str)
            == Some("faq/installment")
    })
    .await
    .expect("an article saved on A never became searchable on B");
    eprintln!("article saved on A searchable on B after {took:?}");
    assert_eq!(
        read(&dirs_b.kb, "faq/installment.md").as_deref(),
        Some(INSTALLMENT)
    );

    // An edit replaces it.
    knowledge_a
        .put("faq/installment", INSTALLMENT_EDITED.to_string(), None)
        .await
        .unwrap();
    let took = wait_for(|| async {
        hit_ids(&knowledge_b, "以旧换新补贴")
            .first()
            .map(String::as_str)
            == Some("faq/installment")
            && !hit_ids(&knowledge_b, "信用卡").contains(&"faq/installment".to_string())
    })
    .await
    .expect("an edit on A never reached B");
    eprintln!("edit on A reached B after {took:?}");

    // A deletion through A removes it on B, file and all.
    knowledge_a.delete("faq/installment").await.unwrap();
    let took = wait_for(|| async {
        !listed(&knowledge_b).contains(&"faq/installment".to_string())
            && !dirs_b.kb.join("faq/installment.md").exists()
    })
    .await
    .expect("a deletion on A never reached B");
    eprintln!("deletion on A reached B after {took:?}");

    // The dictionary and synonyms as the console saves them: B re-analyses with them. 包邮卡 is in no
    // article, so only the new synonym group makes it find the freight insurance article.
    assert!(hit_ids(&knowledge_b, "包邮卡").is_empty());
    let dictionary = "运费险 1000 n\n包邮卡 1000 n\n";
    knowledge_a
        .write_kb_file(DICT_FILE, dictionary.as_bytes())
        .unwrap();
    knowledge_a.reload_analysis().unwrap();
    let synonyms = format!(
        "{}运费险,包邮卡\n",
        read(&dirs_a.kb, SYNONYMS_FILE).unwrap_or_default()
    );
    knowledge_a
        .write_kb_file(SYNONYMS_FILE, synonyms.as_bytes())
        .unwrap();
    knowledge_a.reload_analysis().unwrap();
    let took = wait_for(|| async {
        read(&dirs_b.index, INDEX_DICT_COPY).as_deref() == Some(dictionary)
            && hit_ids(&knowledge_b, "包邮卡").first().map(String::as_str)
                == Some("shipping/freight-insurance")
    })
    .await
    .expect("the new dictionary and synonyms never applied on B");
    eprintln!("dictionary and synonyms from A applied on B after {took:?}");
    assert_eq!(
        read(&dirs_b.kb, SYNONYMS_FILE).as_deref(),
        Some(synonyms.as_str())
    );

    // A file edited on B's disk, picked up by B's watcher, reaches A (no watcher there: A's index
    // changes only through replication).
    dirs_b.write("faq/disk.md", "# 磁盘\n\n直接写进磁盘的文章：夜间配送。\n");
    let took = wait_for(|| async {
        hit_ids(&knowledge_a, "夜间配送")
            .first()
            .map(String::as_str)
            == Some("faq/disk")
    })
    .await
    .expect("a file written on B's disk never reached A");
    eprintln!("file written on B's disk searchable on A after {took:?}");

    // Nothing echoes: once quiet, the bucket gains no revisions.
    let bucket_stream = format!("KV_{}", config.bucket);
    let jetstream = node(&url, "observer").await.jetstream;
    let last_sequence = || async {
        jetstream
            .get_stream(&bucket_stream)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .last_sequence
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let settled = last_sequence().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(last_sequence().await, settled, "changes echo between nodes");

    // A third node, started late and empty, catches up with everything.
    let dirs_c = TestDirs::empty();
    let knowledge_c = open_knowledge(&dirs_c);
    let _sync_c = KbSync::start_with(
        &node(&url, "c").await,
        Arc::clone(&knowledge_c),
        config.clone(),
    )
    .await
    .unwrap();
    let mut expected = fixture_ids();
    expected.push("faq/disk".to_string());
    expected.sort();
    assert_eq!(listed(&knowledge_c), expected);
    assert_eq!(listed(&knowledge_a), expected);
    assert!(!dirs_c.kb.join("faq/installment.md").exists());
    for (path, _) in FIXTURES {
        assert_eq!(read(&dirs_c.kb, path), read(&dirs_a.kb, path), "{path}");
    }
    assert_eq!(
        read(&dirs_c.kb, SYNONYMS_FILE).as_deref(),
        Some(synonyms.as_str())
    );
    assert_eq!(
        hit_ids(&knowledge_c, "包邮卡").first().map(String::as_str),
        Some("shipping/freight-insurance")
    );
    assert_eq!(sync_a.dropped_changes(), 0);
}

fn message(seq: u64, body: &str) -> Message {
    Message {
        seq,
        kind: SenderKind::Visitor,
        agent: None,
        sender_name: "访客".into(),
        body: body.into(),
        attachments: Vec::new(),
        at: Timestamp::now(),
        client_key: None,
    }
}

fn open_history(folder: &Path) -> Arc<MessageIndex> {
    Arc::new(
        MessageIndex::open(folder, Arc::new(Analyzer::new()), 0, || Ok(Vec::new()))
            .unwrap_or_else(|error| panic!("opening the message index: {error}")),
    )
}

fn hits(index: &MessageIndex, text: &str) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = index
        .search(text, 100)
        .unwrap()
        .into_iter()
        .map(|hit| (hit.conversation, hit.seq))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_stored_messages_reach_every_history_index() {
    let Some(url) = nats_url_or_skip("cluster_stored_messages_reach_every_history_index") else {
        return;
    };
    let name = unique("test_");
    let config = MessageLogConfig {
        stream: format!("KEFU_MESSAGES_{name}"),
        subject: format!("kefu_{name}.messages"),
        max_bytes: 64 << 20,
    };
    let _cleanup = DeleteStream {
        url: url.clone(),
        stream: config.stream.clone(),
    };
    let folders = tempfile::tempdir().unwrap();
    let node_a = node(&url, &format!("a-{name}")).await;
    let node_b = node(&url, &format!("b-{name}")).await;
    let history_a = open_history(&folders.path().join("a"));
    let history_b = open_history(&folders.path().join("b"));
    let log_a = MessageLog::start_with(&node_a, Arc::clone(&history_a), config.clone())
        .await
        .unwrap();
    let log_b = MessageLog::start_with(&node_b, Arc::clone(&history_b), config.clone())
        .await
        .unwrap();

    // Stored on A (as the desk tells its sinks), searchable on B.
    let refund = message(1, "我想申请退款");
    log_a.stored("c_1", &refund);
    log_a.stored("c_1", &message(2, "发票抬头写错了"));
    log_a.stored("c_2", &message(1, "物流一直没有更新"));
    let took = wait_for(|| async {
        hits(&history_b, "退款") == [("c_1".to_string(), 1)]
            && hits(&history_b, "物流") == [("c_2".to_string(), 1)]
    })
    .await
    .expect("messages stored on A never became searchable on B");
    eprintln!("messages stored on A searchable on B after {took:?}");

    // Published again: within the window the stream drops the copy (same Nats-Msg-Id); a copy that
    // slips past it (a plain publish, as after the window) is indexed once all the same.
    log_a.stored("c_1", &refund);
    assert_eq!(
        log_a
            .republish(vec![("c_1".to_string(), refund.clone())])
            .await,
        1
    );
    let payload = serde_json::json!({"conversation": "c_1", "message": refund});
    node_a
        .jetstream
        .publish(config.subject.clone(), payload.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    log_a.stored("c_3", &message(1, "退款什么时候到账"));
    wait_for(|| async { hits(&history_b, "到账").contains(&("c_3".to_string(), 1)) })
        .await
        .expect("a later message never reached B");
    assert_eq!(
        hits(&history_b, "退款"),
        [("c_1".to_string(), 1), ("c_3".to_string(), 1)],
        "a message published twice is indexed twice"
    );
    let mut stream = node_a.jetstream.get_stream(&config.stream).await.unwrap();
    // Three messages, the plain copy and c_3: the two copies with the same id were dropped.
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
    assert_eq!(history_b.len(), 4);

    // B acknowledges what its index committed; then a B whose index folder is lost replays the
    // stream from its start into a fresh index and ends equal to A.
    history_b.commit().unwrap();
    let consumer_name = format!("history-b-{name}");
    let acknowledged = wait_for(|| async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&consumer_name).await.unwrap();
        let info = consumer.info().await.unwrap();
        info.num_ack_pending == 0 && info.num_pending == 0
    })
    .await;
    assert!(
        acknowledged.is_some(),
        "B never acknowledged the committed messages"
    );
    drop(log_b);
    drop(history_b);
    let history_b_again = open_history(&folders.path().join("b-again"));
    assert!(history_b_again.is_empty());
    let _log_b_again =
        MessageLog::start_with(&node_b, Arc::clone(&history_b_again), config.clone())
            .await
            .unwrap();
    // Counted once committed, as a search would.
    let took = wait_for(|| async {
        history_b_again.commit().unwrap();
        history_b_again.len() == 4
    })
    .await
    .expect("a fresh index never replayed the stream");
    eprintln!("fresh index rebuilt from the stream after {took:?}");
    wait_for(|| async {
        history_a.commit().unwrap();
        history_a.len() == 4
    })
    .await
    .expect("A's own index never got its messages");
    for query in ["退款", "发票", "物流一直", "到账", "没有更新"] {
        assert_eq!(
            hits(&history_b_again, query),
            hits(&history_a, query),
            "{query}"
        );
    }
    assert!(!hits(&history_a, "发票").is_empty());

    // A consumer lost on the server (deleted by hand, NATS restarted without its state) is made
    // again, and the node's index goes on receiving.
    stream
        .delete_consumer(&format!("history-a-{name}"))
        .await
        .unwrap();
    log_a.stored("c_4", &message(1, "优惠券无法使用"));
    let took = wait_for(|| async { hits(&history_a, "优惠券") == [("c_4".to_string(), 1)] })
        .await
        .expect("a node whose consumer was deleted stopped indexing");
    eprintln!("consumer recreated and message indexed after {took:?}");
    assert_eq!(log_a.dropped_messages(), 0);
}

/// Records what the desk tells a stored-message sink.
#[derive(Debug, Default)]
struct RecordingSink(parking_lot::Mutex<Vec<(String, u64, String)>>);

impl StoredMessageSink for RecordingSink {
    fn stored(&self, conversation: &str, message: &Message) {
        self.0
            .lock()
            .push((conversation.to_string(), message.seq, message.body.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_desk_tells_its_sinks_each_stored_message_and_finds_recent_ones() {
    let app = crate::common::TestApp::new().await;
    let desk = &app.state.conversations;
    let sink = Arc::new(RecordingSink::default());
    desk.add_stored_message_sink(Arc::clone(&sink) as Arc<dyn StoredMessageSink>);
    let before = desk.now();
    let conversation = desk
        .start_for_visitor(
            "v_cluster",
            kefu::services::conversations::StartRequest {
                message: "我想申请退款".to_string(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let told = sink.0.lock().clone();
    assert!(
        told.contains(&(conversation.id.clone(), 1, "我想申请退款".to_string())),
        "{told:?}"
    );
    // Each message once, in seq order.
    let seqs: Vec<u64> = told.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=told.len() as u64).collect::<Vec<_>>());

    // What a new leader republishes: the same messages, and nothing from before.
    let recent = desk.messages_since(before).unwrap();
    let recent: Vec<(String, u64, String)> = recent
        .into_iter()
        .map(|(conversation, message)| (conversation, message.seq, message.body))
        .collect();
    assert_eq!(recent, told);
    let later = before + jiff::SignedDuration::from_secs(3600);
    assert!(desk.messages_since(later).unwrap().is_empty());

    // The desk's index is the one it hands out, and the message is in it.
    let history = desk.history_index();
    assert!(history
        .search("退款", 10)
        .unwrap()
        .iter()
        .any(|hit| hit.conversation == conversation.id && hit.seq == 1));
}
