//! The `kefu` binary: `index`, `search` (text, JSON, batch) and `--help`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{TestDirs, FIXTURES, PUBLISHED_IDS};

/// Runs `kefu` in `cwd` with a clean environment (no `KEFU_*`, no `./kefu.toml` of the repository).
fn kefu(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .expect("running kefu")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is utf-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn index(dirs: &TestDirs, extra: &[&str]) -> Output {
    let kb = dirs.kb.to_str().unwrap();
    let index = dirs.index.to_str().unwrap();
    let mut args = vec!["index", "--kb", kb, "--index", index];
    args.extend_from_slice(extra);
    kefu(&dirs.root, &args)
}

fn search(dirs: &TestDirs, extra: &[&str]) -> Output {
    let index = dirs.index.to_str().unwrap();
    let mut args = vec!["search", "--index", index];
    args.extend_from_slice(extra);
    kefu(&dirs.root, &args)
}

#[test]
fn help_lists_the_subcommands() {
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = stdout(&output);
    for command in [
        "serve", "index", "search", "suggest", "user", "migrate", "export", "import",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command} missing from:\n{help}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["no-such-command"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn index_then_search_prints_ranked_titles_json_and_batches() {
    let dirs = TestDirs::with_fixtures();
    let output = index(&dirs, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.starts_with(&format!("indexed {} articles from ", FIXTURES.len())),
        "{printed}"
    );
    assert!(printed.trim_end().ends_with("(0 broken)"), "{printed}");
    assert!(!stderr(&output).contains("error:"), "{}", stderr(&output));

    // Text: ranked lines `N. title  [id]  score`, the refund article first.
    let output = search(&dirs, &["怎么申请退款"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let first = printed.lines().next().unwrap_or_default();
    assert!(
        first
            .trim_start()
            .starts_with("1. 如何申请退款  [returns/refund]"),
        "{printed}"
    );
    for (rank, line) in printed.lines().enumerate() {
        assert!(
            line.trim_start().starts_with(&format!("{}. ", rank + 1)),
            "{printed}"
        );
    }
    // The index copy of the dictionary and synonyms is used: 退钱 finds 退款.
    let output = search(&dirs, &["退钱"]);
    assert!(
        stdout(&output).contains("[returns/refund]"),
        "{}",
        stdout(&output)
    );
    let output = search(&dirs, &["！！？？"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output), "no articles match\n");

    // JSON.
    let output = search(&dirs, &["--json", "退款"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
    let hits = results["hits"].as_array().unwrap();
    assert_eq!(hits[0]["id"], "returns/refund", "{results}");
    assert!(hits[0]["snippet"].as_str().unwrap().contains("<mark>"));
    assert!(results["took_ms"].is_number());

    // Drafts and categories.
    let output = search(&dirs, &["--json", "以旧换新"]);
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        results["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hit| hit["id"] != "returns/trade-in"),
        "{results}"
    );
    let output = search(&dirs, &["--json", "--drafts", "以旧换新"]);
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results["hits"][0]["id"], "returns/trade-in");
    let output = search(&dirs, &["--json", "--category", "invoices", "申请"]);
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["invoices/e-invoice"]);

    // Batch: one `qid<TAB>ids` line per query line, in input order, at most --limit ids each.
    let batch = dirs.root.join("queries.tsv");
    std::fs::write(
        &batch,
        "q3\t申请\nq1\t怎么申请退款\n\nq2\t！！？？\nq9\t退貨\nbad line without a tab\nq4\t运费险\n",
    )
    .unwrap();
    let output = search(&dirs, &["--batch", batch.to_str().unwrap(), "--limit", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let lines: Vec<(&str, Vec<&str>)> = printed
        .lines()
        .map(|line| {
            let (qid, ids) = line.split_once('\t').expect("qid<TAB>ids");
            let ids = if ids.is_empty() {
                Vec::new()
            } else {
                ids.split(',').collect()
            };
            (qid, ids)
        })
        .collect();
    let qids: Vec<&str> = lines.iter().map(|(qid, _)| *qid).collect();
    assert_eq!(qids, ["q3", "q1", "q2", "q9", "q4"], "{printed}");
    assert_eq!(lines[0].1.len(), 3, "{printed}");
    assert!(lines[0].1.iter().all(|id| PUBLISHED_IDS.contains(id)));
    assert_eq!(lines[1].1.first(), Some(&"returns/refund"), "{printed}");
    assert!(lines[1].1.len() <= 3);
    assert_eq!(lines[2].1, Vec::<&str>::new());
    assert_eq!(lines[3].1.first(), Some(&"returns/seven-day"), "{printed}");
    assert_eq!(lines[4].1.first(), Some(&"shipping/freight-insurance"));
    assert!(
        stderr(&output).contains(":6: expected `qid<TAB>query`"),
        "the bad line is reported by number: {}",
        stderr(&output)
    );

    // `suggest --batch` runs each line through the suggestion pipeline: for a single message it asks
    // the same question, so it suggests the search's ranking, in its order, less the hits too weak to
    // stand beside a confident first (the eval compares the two paths).
    let index_dir = dirs.index.to_str().unwrap();
    let suggested = kefu(
        &dirs.root,
        &[
            "suggest",
            "--index",
            index_dir,
            "--batch",
            batch.to_str().unwrap(),
            "--limit",
            "3",
        ],
    );
    assert!(suggested.status.success(), "{}", stderr(&suggested));
    assert!(
        stderr(&suggested).contains("5 messages: p50"),
        "the per-message latency is reported: {}",
        stderr(&suggested)
    );
    let suggested_lines: Vec<(String, Vec<String>)> = stdout(&suggested)
        .lines()
        .map(|line| {
            let (qid, ids) = line.split_once('\t').expect("qid<TAB>ids");
            let ids = ids
                .split(',')
                .filter(|id| !id.is_empty())
                .map(String::from)
                .collect();
            (qid.to_string(), ids)
        })
        .collect();
    assert_eq!(suggested_lines.len(), lines.len(), "{}", stdout(&suggested));
    for ((qid, searched), (suggested_qid, suggestions)) in lines.iter().zip(&suggested_lines) {
        assert_eq!(qid, suggested_qid);
        let mut rest = searched.iter();
        assert!(
            suggestions.iter().all(|id| rest.any(|hit| hit == id)),
            "{qid}: {suggestions:?} is not in the order of {searched:?}"
        );
        if !searched.is_empty() {
            // These fixture questions all have a confident first hit.
            assert_eq!(
                suggestions.first().map(String::as_str),
                searched.first().copied(),
                "{qid}"
            );
        }
    }
    let one = kefu(
        &dirs.root,
        &["suggest", "--index", index_dir, "退款多久到账"],
    );
    assert!(
        stdout(&one).contains("[returns/refund]"),
        "{}",
        stdout(&one)
    );
}

#[test]
fn index_reports_broken_articles_and_strict_fails() {
    let dirs = TestDirs::with_fixtures();
    dirs.write(
        "returns/broken.md",
        "---\ntitle: 坏了\ntags: [退款, 售后\nstatus: published\n---\n正文\n",
    );
    let mut garbled = "第一行\n第二行\n".as_bytes().to_vec();
    garbled.extend_from_slice(&[0xff, 0xfe]);
    dirs.write("faq/garbled.md", &garbled);

    let output = index(&dirs, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let errors = stderr(&output);
    let kb = dirs.kb.display().to_string();
    assert!(
        errors.contains(&format!("error: {kb}/faq/garbled.md:3: invalid utf-8")),
        "{errors}"
    );
    let broken_prefix = format!("error: {kb}/returns/broken.md:");
    let broken_line = errors
        .lines()
        .find_map(|line| line.strip_prefix(&broken_prefix))
        .unwrap_or_else(|| panic!("no {broken_prefix} in {errors}"));
    let line_number: usize = broken_line.split(':').next().unwrap().parse().unwrap();
    assert!((3..=5).contains(&line_number), "{errors}");
    let printed = stdout(&output);
    assert!(
        printed.starts_with(&format!("indexed {} articles", FIXTURES.len())),
        "{printed}"
    );
    assert!(printed.trim_end().ends_with("(2 broken)"), "{printed}");

    let output = index(&dirs, &["--strict"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("returns/broken.md:"));
    // The good articles are still indexed under --strict.
    let output = search(&dirs, &["怎么申请退款"]);
    assert!(stdout(&output).contains("[returns/refund]"));

    // Without broken files --strict succeeds.
    dirs.remove("returns/broken.md");
    dirs.remove("faq/garbled.md");
    let output = index(&dirs, &["--strict"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn reindexing_drops_removed_articles() {
    let dirs = TestDirs::with_fixtures();
    assert!(index(&dirs, &[]).status.success());
    dirs.remove("returns/seven-day.md");
    let output = index(&dirs, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with(&format!("indexed {} articles", FIXTURES.len() - 1)));
    let output = search(&dirs, &["--json", "无理由退货"]);
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        results["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hit| hit["id"] != "returns/seven-day"),
        "{results}"
    );
}

/// Regression: the index folder also holds `kefu-dict.txt` and `kefu-synonyms.txt`; when
/// `clear_index_directory` did not recognise them, every rebuild of an existing index was refused with
/// "holds files that are not a kefu index".
#[test]
fn reindexing_after_a_dictionary_change_succeeds() {
    let dirs = TestDirs::with_fixtures();
    assert!(index(&dirs, &[]).status.success());
    dirs.write("_dict.txt", "运费险 1000 n\n账户余额 500 n\n");
    let output = index(&dirs, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = search(&dirs, &["--json", "账户余额"]);
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        results["hits"][0]["id"], "shipping/freight-insurance",
        "{results}"
    );
}

#[test]
fn search_without_an_index_fails_cleanly() {
    let dirs = TestDirs::empty();
    let output = search(&dirs, &["退款"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("build one with `kefu index`"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn export_to_standard_output_writes_the_header_and_every_record() {
    let dirs = TestDirs::empty();
    let data = dirs.data.to_str().unwrap();
    // `kefu user list` on an empty store creates `admin`, as the first start would.
    let listed = kefu(&dirs.root, &["user", "list", "--data", data]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let exported = kefu(&dirs.root, &["export", "--out", "-", "--data", data]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let text = stdout(&exported);
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header")).unwrap();
    assert_eq!(header["kefu_export"], 1);
    let tables: Vec<String> = lines
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["table"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(tables.iter().any(|table| table == "accounts"), "{tables:?}");
    assert!(
        stderr(&exported).contains("from the sled store"),
        "{}",
        stderr(&exported)
    );
}
