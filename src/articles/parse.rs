//! Parsing one article: optional YAML front matter, then a markdown body read with pulldown-cmark.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

use crate::domain::{Article, ArticleId, ArticleStatus, Section};
use crate::error::ArticleError;

/// Front matter as written; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Option<String>,
    title: Option<String>,
    category: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    keywords: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    questions: Vec<String>,
    status: Option<String>,
    updated: Option<serde_norway::Value>,
}

/// Editors write `tags: 退货` as often as `tags: [退货]`; both mean the same.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        Nothing(()),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(value) => vec![value],
        OneOrMany::Many(values) => values,
        OneOrMany::Nothing(()) => Vec::new(),
    })
}

/// Parses one article file.
///
/// `path` is relative to the knowledge base with `/` separators; it gives the default id (without `.md`)
/// and category (the parent folder). Returns an [`ArticleError`] naming the line for invalid UTF-8,
/// unclosed or malformed front matter, unknown fields, a bad id or status.
pub fn parse_article(path: &str, bytes: &[u8]) -> Result<Article, ArticleError> {
    let fail = |line: usize, reason: String| ArticleError {
        file: path.to_string(),
        line,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|utf8_error| {
        let valid = &bytes[..utf8_error.valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        fail(
            line,
            format!("invalid utf-8 at byte {}", utf8_error.valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front_matter, body) =
        split_front_matter(text).map_err(|(line, reason)| fail(line, reason))?;
    let front: FrontMatter = match front_matter {
        Some(yaml) if !yaml.trim().is_empty() => {
            serde_norway::from_str(yaml).map_err(|yaml_error| {
                // The YAML starts on line 2, after the opening `---`.
                let line = yaml_error
                    .location()
                    .map_or(1, |location| location.line() + 1);
                fail(line, format!("front matter: {yaml_error}"))
            })?
        }
        _ => FrontMatter::default(),
    };

    let path_stem = path.strip_suffix(".md").unwrap_or(path);
    let raw_id = front.id.as_deref().unwrap_or(path_stem);
    let id = ArticleId::parse(raw_id).map_err(|error| fail(1, error.to_string()))?;
    let status = match front.status.as_deref() {
        None => ArticleStatus::Published,
        Some(name) => ArticleStatus::from_name(name).ok_or_else(|| {
            fail(
                1,
                format!("status `{name}` is neither `published` nor `draft`"),
            )
        })?,
    };
    let updated = match front.updated {
        None | Some(serde_norway::Value::Null) => None,
        Some(serde_norway::Value::String(value)) => Some(value),
        Some(other) => Some(
            serde_norway::to_string(&other)
                .map_err(|error| fail(1, format!("updated: {error}")))?
                .trim()
                .to_string(),
        ),
    };

    let outline = outline_markdown(body);
    let file_stem = path_stem
        .rsplit('/')
        .next()
        .unwrap_or(path_stem)
        .to_string();
    let title = front
        .title
        .filter(|title| !title.trim().is_empty())
        .or_else(|| outline.title.clone())
        .unwrap_or(file_stem);
    let category = front.category.unwrap_or_else(|| {
        path.rsplit_once('/')
            .map(|(folder, _)| folder.rsplit('/').next().unwrap_or(folder).to_string())
            .unwrap_or_default()
    });
    let sections = outline
        .sections
        .into_iter()
        .map(|mut section| {
            if section.heading.is_empty() {
                section.heading = title.clone();
            }
            section
        })
        .filter(|section| !section.text.is_empty() || section.level > 1)
        .collect();

    Ok(Article {
        id,
        title: title.trim().to_string(),
        category,
        tags: clean_list(front.tags),
        keywords: clean_list(front.keywords),
        questions: clean_list(front.questions),
        status,
        updated,
        headings: outline.headings,
        body: outline.body,
        sections,
        path: path.to_string(),
        content_hash: blake3::hash(bytes).to_hex().to_string(),
    })
}

fn clean_list(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .collect()
}

/// Splits `---`-fenced front matter from the body; an opening fence with no closing one is an error on line 1.
pub(super) fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), (usize, String)> {
    let Some(after_open) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Ok((None, text));
    };
    let mut offset = 0;
    for line in after_open.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let yaml = &after_open[..offset];
            let body = &after_open[offset + line.len()..];
            return Ok((Some(yaml), body));
        }
        offset += line.len();
    }
    Err((
        1,
        "front matter opened with `---` is never closed".to_string(),
    ))
}

/// What the markdown body yields for indexing.
#[derive(Debug, Default)]
struct Outline {
    title: Option<String>,
    headings: Vec<String>,
    body: String,
    sections: Vec<Section>,
}

/// Walks pulldown-cmark events once, collecting the first `#` heading as the title, the other headings,
/// the plain text, and the text under each heading.
fn outline_markdown(markdown: &str) -> Outline {
    let mut outline = Outline::default();
    let mut current = Section {
        heading: String::new(),
        level: 1,
        answer: String::new(),
        text: String::new(),
    };
    let mut heading_text: Option<(u8, String)> = None;
    let mut block_depth = 0usize;
    let mut answer_done = false;
    // The next number of each open list (`None` for a bulleted one), innermost last: a section's text
    // keeps its list markers, so steps sent to a visitor still read as numbered steps.
    let mut lists: Vec<Option<u64>> = Vec::new();

    for event in Parser::new_ext(markdown, Options::all()) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading_text = Some((heading_level(level), String::new()))
            }
            Event::End(TagEnd::Heading(_)) => {
                let Some((level, text)) = heading_text.take() else {
                    continue;
                };
                let text = text.trim().to_string();
                if level == 1
                    && outline.title.is_none()
                    && outline.sections.is_empty()
                    && current.text.is_empty()
                {
                    outline.title = Some(text.clone());
                    current.heading = text;
                    continue;
                }
                finish_section(&mut outline.sections, &mut current);
                outline.headings.push(text.clone());
                current = Section {
                    heading: text,
                    level,
                    answer: String::new(),
                    text: String::new(),
                };
                answer_done = false;
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some((_, heading)) = heading_text.as_mut() {
                    heading.push_str(&text);
                } else {
                    push_text(&mut outline.body, &text);
                    push_text(&mut current.text, &text);
                    if !answer_done {
                        push_text(&mut current.answer, &text);
                    }
                }
            }
            Event::SoftBreak | Event::HardBreak if heading_text.is_none() => {
                outline.body.push('\n');
                current.text.push('\n');
                if !answer_done {
                    current.answer.push('\n');
                }
            }
            Event::Start(Tag::List(first_number)) => {
                lists.push(first_number);
                block_depth += 1;
            }
            Event::Start(Tag::Item) => {
                let depth = lists.len().saturating_sub(1);
                let marker = match lists.last_mut() {
                    Some(Some(number)) => {
                        let marker = format!("{number}. ");
                        *number += 1;
                        marker
                    }
                    _ => "- ".to_string(),
                };
                let marker = format!("{}{marker}", "  ".repeat(depth));
                end_block(&mut current.text);
                current.text.push_str(&marker);
                if !answer_done {
                    end_block(&mut current.answer);
                    current.answer.push_str(&marker);
                }
            }
            Event::Start(
                Tag::Paragraph | Tag::CodeBlock(_) | Tag::BlockQuote(_) | Tag::Table(_),
            ) => block_depth += 1,
            Event::End(
                block @ (TagEnd::Paragraph
                | TagEnd::List(_)
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::Table),
            ) => {
                if matches!(block, TagEnd::List(_)) {
                    lists.pop();
                }
                block_depth = block_depth.saturating_sub(1);
                end_block(&mut outline.body);
                end_block(&mut current.text);
                // A paragraph that ends with a colon introduces what follows (以下情况支持仅退款：
                // then a list): the answer takes the next block too.
                let introduces = current.answer.trim_end().ends_with(['：', ':']);
                if block_depth == 0 && !current.answer.trim().is_empty() && !introduces {
                    answer_done = true;
                }
                if !answer_done {
                    end_block(&mut current.answer);
                }
            }
            Event::End(TagEnd::Item | TagEnd::TableCell) => {
                end_block(&mut outline.body);
                end_block(&mut current.text);
                if !answer_done {
                    end_block(&mut current.answer);
                }
            }
            _ => {}
        }
    }
    finish_section(&mut outline.sections, &mut current);
    outline.body = outline.body.trim().to_string();
    outline
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn push_text(buffer: &mut String, text: &str) {
    buffer.push_str(text);
}

fn end_block(buffer: &mut String) {
    if !buffer.is_empty() && !buffer.ends_with('\n') {
        buffer.push('\n');
    }
}

fn finish_section(sections: &mut Vec<Section>, current: &mut Section) {
    let text = current.text.trim().to_string();
    let answer = current.answer.trim().to_string();
    if text.is_empty() && current.heading.is_empty() {
        return;
    }
    sections.push(Section {
        heading: std::mem::take(&mut current.heading),
        level: current.level,
        answer,
        text,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "---\nid: returns/refund\ntitle: 如何申请退款\ntags: [退款, 售后]\nkeywords: 退款流程\nquestions:\n  - 钱怎么退\n  - 退款去哪里申请\nstatus: draft\nupdated: 2026-11-20\n---\n\n# 申请退款\n\n在订单页点击申请。\n\n## 到账时间\n\n原路退回，1-3 个工作日到账。\n\n第二段说明。\n\n## 注意事项\n\n- 优惠券不退\n- 运费险另算\n";

    #[test]
    fn front_matter_fields_are_read() {
        let article = parse_article("returns/refund.md", FULL.as_bytes()).unwrap();
        assert_eq!(article.id.as_str(), "returns/refund");
        assert_eq!(article.title, "如何申请退款");
        assert_eq!(article.category, "returns");
        assert_eq!(article.tags, ["退款", "售后"]);
        assert_eq!(article.keywords, ["退款流程"]);
        assert_eq!(article.questions, ["钱怎么退", "退款去哪里申请"]);
        assert_eq!(article.status, ArticleStatus::Draft);
        assert_eq!(article.updated.as_deref(), Some("2026-11-20"));
    }

    #[test]
    fn headings_sections_and_answers_come_from_the_body() {
        let article = parse_article("returns/refund.md", FULL.as_bytes()).unwrap();
        assert_eq!(article.headings, ["到账时间", "注意事项"]);
        assert!(article.body.contains("在订单页点击申请。"));
        assert!(article.body.contains("运费险另算"));
        assert!(
            !article.body.contains("申请退款\n"),
            "the title heading is not body text"
        );
        let sections: Vec<(&str, &str)> = article
            .sections
            .iter()
            .map(|section| (section.heading.as_str(), section.answer.as_str()))
            .collect();
        assert_eq!(
            sections,
            [
                ("申请退款", "在订单页点击申请。"),
                ("到账时间", "原路退回，1-3 个工作日到账。"),
                ("注意事项", "- 优惠券不退\n- 运费险另算"),
            ]
        );
        assert!(article.sections[1].text.contains("第二段说明。"));
    }

    #[test]
    fn an_answer_that_introduces_a_list_takes_the_list() {
        let markdown = "# 仅退款\n\n以下情况支持仅退款：\n\n- 未发货\n- 商品丢件\n\n其他情况请申请退货退款。\n";
        let article = parse_article("returns/refund-only.md", markdown.as_bytes()).unwrap();
        assert_eq!(
            article.sections[0].answer,
            "以下情况支持仅退款：\n- 未发货\n- 商品丢件"
        );
    }

    #[test]
    fn section_text_keeps_numbered_steps_and_bullets() {
        let markdown = "# 修改密码\n\n按下面的步骤操作。\n\n1. 打开「设置」\n2. 进入「账号与安全」\n   - 选择「修改密码」\n3. 输入新密码\n\n## 注意\n\n密码 8–20 位。\n";
        let article = parse_article("account/password.md", markdown.as_bytes()).unwrap();
        assert_eq!(
            article.sections[0].text,
            "按下面的步骤操作。\n1. 打开「设置」\n2. 进入「账号与安全」\n  - 选择「修改密码」\n3. 输入新密码"
        );
        assert_eq!(article.sections[0].answer, "按下面的步骤操作。");
        assert!(
            !article.body.contains("1. "),
            "markers stay out of the indexed body"
        );
    }

    #[test]
    fn defaults_come_from_path_and_first_heading() {
        let article = parse_article(
            "shipping/运费.md",
            "# 运费说明\n\n满 99 元包邮。\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(article.id.as_str(), "shipping/运费");
        assert_eq!(article.title, "运费说明");
        assert_eq!(article.category, "shipping");
        assert_eq!(article.status, ArticleStatus::Published);
        let untitled = parse_article("faq.md", "只有正文。".as_bytes()).unwrap();
        assert_eq!(untitled.title, "faq");
        assert_eq!(untitled.category, "");
    }

    #[test]
    fn broken_front_matter_names_its_line() {
        let broken = "---\ntitle: 好\ntags: [a, b\nstatus: published\n---\nbody";
        let error = parse_article("x.md", broken.as_bytes()).unwrap_err();
        assert_eq!(error.file, "x.md");
        assert!(
            error.line >= 3,
            "line {} should point into the front matter",
            error.line
        );
        assert!(error.reason.starts_with("front matter"), "{}", error.reason);

        let unclosed = parse_article("y.md", b"---\ntitle: x\nbody").unwrap_err();
        assert_eq!(unclosed.line, 1);
        assert!(unclosed.reason.contains("never closed"));

        let unknown =
            parse_article("z.md", "---\ntitle: a\ntittle: b\n---\n".as_bytes()).unwrap_err();
        assert_eq!(unknown.line, 3);

        let status = parse_article("s.md", b"---\nstatus: hidden\n---\n").unwrap_err();
        assert!(status.reason.contains("hidden"));
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut bytes = "第一行\n第二行\n".as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        let error = parse_article("bad.md", &bytes).unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.reason.contains("utf-8"));
    }
}
