//! Quick-reply search and suggestion latency (no libtest harness):
//!
//!   cargo bench --bench assist -- replies [N] [QUERIES]
//!       N quick replies (default 10,000) generated from the starter set; QUERIES searches (default
//!       3,000) mixing shortcut prefixes, pinyin initials and full spelling, and Chinese keywords.
//!   cargo bench --bench assist -- suggest KB_DIR INDEX_DIR [CONVERSATIONS] [SAMPLES]
//!       Opens a built knowledge base (e.g. the 100,000 articles that `cargo bench --bench kb -- build
//!       100000` leaves in KEFU_BENCH_DIR), starts CONVERSATIONS conversations (default 1,000), then for
//!       SAMPLES visitor messages (default 2,000) stores the message and times what follows it on the
//!       server: building the query from the recent visitor messages, the article and quick-reply
//!       searches, the passages, and counting the suggestions as shown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kefu::config::{AccountsConfig, ConversationsConfig, SearchConfig};
use kefu::domain::{AccountId, ReplyScope};
use kefu::search::{Analyzer, WriterOptions};
use kefu::services::conversations::{Party, StartRequest};
use kefu::services::quick_replies::{ReplyInput, ScopeInput};
use kefu::services::{
    AccountService, AssistService, ConversationService, KnowledgeService, QuickReplyService,
    SystemClock,
};
use kefu::storage::{Store, StoredConversations};

const STARTER: &str = include_str!("../src/services/quick_replies/starter.csv");

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("replies") => {
            let n = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
            let queries = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(3_000);
            replies(n, queries);
        }
        Some("suggest") => {
            let kb = PathBuf::from(args.get(1).expect("suggest KB_DIR INDEX_DIR"));
            let index = PathBuf::from(args.get(2).expect("suggest KB_DIR INDEX_DIR"));
            let conversations = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1_000);
            let samples = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(2_000);
            suggest(kb, index, conversations, samples);
        }
        _ => eprintln!("usage: cargo bench --bench assist -- replies [N] [QUERIES] | suggest KB_DIR INDEX_DIR [CONVERSATIONS] [SAMPLES]"),
    }
}

fn percentiles(label: &str, mut micros: Vec<u64>) -> u64 {
    micros.sort_unstable();
    let pick = |fraction: f64| micros[((micros.len() - 1) as f64 * fraction).round() as usize];
    let mean = micros.iter().sum::<u64>() / micros.len() as u64;
    println!(
        "{label:<28} count {:>6}  mean {mean:>6} us  p50 {:>6}  p90 {:>6}  p99 {:>6}  max {:>6}",
        micros.len(),
        pick(0.5),
        pick(0.9),
        pick(0.99),
        micros[micros.len() - 1]
    );
    pick(0.99)
}

fn starter_rows() -> Vec<(String, String, String, String)> {
    let mut reader = csv::Reader::from_reader(STARTER.as_bytes());
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (
                record[1].to_string(),
                record[2].to_string(),
                record[3].to_string(),
                record[4].to_string(),
            )
        })
        .collect()
}

fn replies(n: usize, queries: usize) {
    let folder = tempfile::tempdir().unwrap();
    let store = Store::open(folder.path()).unwrap();
    let analyzer = Arc::new(Analyzer::new());
    let started = Instant::now();
    let service = QuickReplyService::open(
        store,
        Arc::clone(&analyzer),
        Arc::new(SystemClock),
        AccountId(1),
    )
    .unwrap();
    let rows = starter_rows();
    let mut rng = fastrand::Rng::with_seed(7);
    // Variants of the starter replies: the same wording with other products and numbers, spread over
    // personal scopes of 50 agents and the team.
    let products = [
        "耳机",
        "手机",
        "空气炸锅",
        "扫地机器人",
        "羽绒服",
        "运动鞋",
        "电饭煲",
        "显示器",
    ];
    let mut batch = Vec::new();
    for index in 0..n.saturating_sub(rows.len()) {
        let (title, content, category, _) = &rows[index % rows.len()];
        let product = products[rng.usize(..products.len())];
        let owner = rng.u64(1..=50);
        let scope = if owner <= 5 {
            ScopeInput::Team
        } else {
            ScopeInput::Personal
        };
        batch.push((
            index + 2,
            ReplyInput {
                scope,
                title: format!("{product}{title}"),
                content: format!("{content}（{product}，编号{index}）"),
                category: category.clone(),
                shortcut: Some(format!("/g{index}")),
                tags: vec![product.to_string()],
            },
        ));
        if batch.len() == 1000 {
            service
                .import_rows(std::mem::take(&mut batch), AccountId(owner), &|_| Ok(()))
                .unwrap();
        }
    }
    if !batch.is_empty() {
        service
            .import_rows(batch, AccountId(1), &|_| Ok(()))
            .unwrap();
    }
    println!(
        "=== quick-reply search, {n} replies (built in {:.1} s) ===",
        started.elapsed().as_secs_f64()
    );
    let scopes = vec![
        ReplyScope::Team,
        ReplyScope::Personal {
            owner: AccountId(7),
        },
    ];
    let mut texts: Vec<String> = Vec::new();
    for (title, content, _, shortcut) in &rows {
        texts.push(shortcut[..shortcut.len().min(3)].to_string());
        let initials: String = kefu::search::pinyin_prefixes(title)
            .into_iter()
            .filter(|prefix| prefix.len() == 2)
            .take(1)
            .collect();
        texts.push(initials);
        texts.push(content.chars().take(6).collect());
        texts.push(title.clone());
    }
    texts.push("tuikuan".into());
    texts.push("fapiao".into());
    let mut timings = Vec::with_capacity(queries);
    let mut hits = 0;
    for sample in 0..queries {
        let text = &texts[sample % texts.len()];
        let started = Instant::now();
        let found = service.search(text, &scopes, AccountId(7), 10).unwrap();
        timings.push(started.elapsed().as_micros() as u64);
        hits += found.len();
    }
    println!("{} hits on average", hits / queries);
    let p99 = percentiles("search limit 10", timings);
    println!(
        "target p99 <= 2000 us: {}",
        if p99 <= 2000 { "MET" } else { "NOT MET" }
    );
}

fn suggest(kb: PathBuf, index: PathBuf, conversations: usize, samples: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let folder = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let (knowledge, _) = KnowledgeService::open(
            &kb,
            &index,
            SearchConfig::default(),
            WriterOptions::serving(),
        )
        .unwrap();
        let knowledge = Arc::new(knowledge);
        println!(
            "=== suggestions: {} articles, {conversations} conversations ===\nopened the index in {:.1} s",
            knowledge.index().article_count(),
            started.elapsed().as_secs_f64()
        );
        let store = Store::open(folder.path()).unwrap();
        let clock: Arc<dyn kefu::services::Clock> = Arc::new(SystemClock);
        let accounts_config = AccountsConfig {
            admin_password: Some("Bench-Admin-2026#".into()),
            ..AccountsConfig::default()
        };
        let (accounts, _) = AccountService::open(
            store.clone(),
            accounts_config,
            Arc::clone(&clock),
            Box::new(kefu::services::captcha::ImageCaptcha),
        )
        .unwrap();
        let accounts = Arc::new(accounts);
        let desk = Arc::new(
            ConversationService::open(
                Arc::new(StoredConversations::new(store.clone())),
                Arc::clone(&accounts),
                Arc::clone(&clock),
                ConversationsConfig::default(),
                folder.path(),
                knowledge.index().analyzer(),
            )
            .unwrap(),
        );
        let replies = Arc::new(
            QuickReplyService::open(store.clone(), knowledge.index().analyzer(), clock, AccountId(1))
                .unwrap(),
        );
        let assist = Arc::new(AssistService::new(
            Arc::clone(&knowledge),
            Arc::clone(&replies),
            Arc::clone(&desk),
            store,
        ));
        let questions = [
            "我的订单什么时候发货", "退款多久能到账", "发票抬头写错了怎么办", "优惠券为什么用不了",
            "快递一直没有更新", "怎么修改收货地址", "会员积分怎么兑换", "账号被冻结了",
            "七天无理由退货运费谁出", "可以开增值税专用发票吗", "支付失败但是扣款了", "商品坏了能换吗",
        ];
        let mut ids = Vec::with_capacity(conversations);
        for n in 0..conversations {
            let (token, _) = accounts.issue_visitor_token().unwrap();
            let request = StartRequest {
                message: questions[n % questions.len()].to_string(),
                ..StartRequest::default()
            };
            ids.push(desk.start(&token, request).await.unwrap().id);
        }
        let scopes = vec![ReplyScope::Team];
        let mut timings = Vec::with_capacity(samples);
        let mut rng = fastrand::Rng::with_seed(11);
        for sample in 0..samples {
            let id = &ids[rng.usize(..ids.len())];
            let text = format!("{} 麻烦帮我看一下", questions[sample % questions.len()]);
            desk.send(&Party::Visitor, id, None, &text, Vec::new(), false)
                .await
                .unwrap();
            // From here: what the server does between storing the message and sending the event.
            let started = Instant::now();
            let assist = Arc::clone(&assist);
            let conversation = id.clone();
            let scopes = scopes.clone();
            let suggestions = tokio::task::spawn_blocking(move || {
                let suggestions = assist
                    .for_conversation(&conversation, AccountId(1), "客服", &scopes)
                    .unwrap();
                assist.record_shown(&suggestions).unwrap();
                suggestions
            })
            .await
            .unwrap();
            timings.push(started.elapsed().as_micros() as u64);
            assert!(!suggestions.is_empty());
        }
        let p99 = percentiles("message -> suggestions", timings);
        println!(
            "target p99 <= 50000 us: {}",
            if p99 <= 50_000 { "MET" } else { "NOT MET" }
        );
    });
}
