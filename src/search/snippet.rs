//! Highlighted body excerpts for search hits.
//!
//! tantivy's `SnippetGenerator` assumes token offsets never step backwards. jieba's search mode emits
//! a long word and the sub-words inside it (身份验证器, 身份, 验证), so offsets do step back, and the
//! generator then slices outside its fragment and panics. This highlighter takes the same inputs (the
//! query's terms on one field, weighted by rarity) but tolerates overlapping tokens: it merges the
//! matched ranges and picks the window holding the most weight.

use std::collections::HashMap;

use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::snippet::collapse_overlapped_ranges;
use tantivy::tokenizer::Token;
use tantivy::Searcher;

use crate::error::Result;

/// The query's terms on one field and how much a match of each is worth.
#[derive(Debug, Default)]
pub struct Highlighter {
    weights: HashMap<String, f32>,
}

impl Highlighter {
    /// Collects the terms `query` asks of `field`; rare terms weigh more, as in tantivy's generator.
    pub fn for_query(searcher: &Searcher, query: &dyn Query, field: Field) -> Result<Highlighter> {
        let mut terms = Vec::new();
        query.query_terms(&mut |term, _| {
            if term.field() == field {
                terms.push(term.clone());
            }
        });
        let mut weights = HashMap::new();
        for term in terms {
            let Some(text) = term.value().as_str().map(str::to_string) else {
                continue;
            };
            let document_frequency = searcher.doc_freq(&term)?;
            if document_frequency > 0 {
                weights.insert(text, 1.0 / (1.0 + document_frequency as f32));
            }
        }
        Ok(Highlighter { weights })
    }

    #[cfg(test)]
    fn from_terms(terms: &[&str]) -> Highlighter {
        let weights = terms.iter().map(|term| (term.to_string(), 1.0)).collect();
        Highlighter { weights }
    }

    /// An HTML-safe excerpt of at most `max_chars` characters of `text` with matches in `<mark>`,
    /// or `None` when no token matches. `tokens` are `text`'s tokens in any order; overlaps are fine.
    pub fn excerpt_html(&self, text: &str, tokens: &[Token], max_chars: usize) -> Option<String> {
        let mut matches: Vec<(usize, usize, f32)> = tokens
            .iter()
            .filter_map(|token| {
                let weight = *self.weights.get(&token.text)?;
                let in_bounds = token.offset_from < token.offset_to
                    && token.offset_to <= text.len()
                    && text.is_char_boundary(token.offset_from)
                    && text.is_char_boundary(token.offset_to);
                in_bounds.then_some((token.offset_from, token.offset_to, weight))
            })
            .collect();
        if matches.is_empty() {
            return None;
        }
        matches.sort_by_key(|&(start, end, _)| (start, end));
        let boundaries = char_boundaries(text);
        let (window_start, window_end) = densest_window(&boundaries, &matches, max_chars);
        // Start a little before the first match when the window has room, so the excerpt reads as a sentence.
        let (window_start, window_end) =
            widen_to_the_left(&boundaries, window_start, window_end, max_chars);

        let inside: Vec<std::ops::Range<usize>> = matches
            .iter()
            .filter(|&&(start, end, _)| start >= window_start && end <= window_end)
            .map(|&(start, end, _)| start..end)
            .collect();
        let mut html = String::new();
        let mut cursor = window_start;
        for range in collapse_overlapped_ranges(&inside) {
            html.push_str(&ammonia::clean_text(&text[cursor..range.start]));
            html.push_str("<mark>");
            html.push_str(&ammonia::clean_text(&text[range.clone()]));
            html.push_str("</mark>");
            cursor = range.end;
        }
        html.push_str(&ammonia::clean_text(&text[cursor..window_end]));
        Some(html)
    }
}

impl Highlighter {
    /// The literal occurrences of the terms in `text`, as tokens for [`Highlighter::excerpt_html`].
    ///
    /// The terms are jieba words and sub-words of the query, so where they occur as written they are
    /// what tokenizing the text would match; finding them by substring search instead of running jieba
    /// over each hit's body was most of a snippet's cost. Latin words match in any case (terms are
    /// lower-cased, and lower-casing ASCII keeps every byte offset) and only as whole words (pay is not
    /// marked inside alipay, as the tokenizer would not cut it there). Empty when no term occurs as
    /// written (text that normalisation changes, such as traditional characters): then tokenize the text.
    pub fn literal_matches(&self, text: &str) -> Vec<Token> {
        let haystack = text.to_ascii_lowercase();
        let bytes = haystack.as_bytes();
        let latin_at = |offset: usize| bytes.get(offset).is_some_and(u8::is_ascii_alphanumeric);
        self.weights
            .keys()
            .flat_map(|term| {
                let (first, last) = (term.as_bytes()[0], term.as_bytes()[term.len() - 1]);
                haystack
                    .match_indices(term.as_str())
                    .filter(move |&(start, found)| {
                        let cut_left =
                            first.is_ascii_alphanumeric() && start > 0 && latin_at(start - 1);
                        let cut_right =
                            last.is_ascii_alphanumeric() && latin_at(start + found.len());
                        !cut_left && !cut_right
                    })
                    .map(|(start, found)| Token {
                        offset_from: start,
                        offset_to: start + found.len(),
                        text: term.clone(),
                        ..Token::default()
                    })
            })
            .collect()
    }
}

/// Byte offset of every character start, plus the end, so windows are counted in characters.
fn char_boundaries(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(offset, _)| offset)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// Of the windows of `max_chars` characters starting at a match, the one holding the most weight
/// (the earliest on ties). `matches` are sorted by start.
fn densest_window(
    boundaries: &[usize],
    matches: &[(usize, usize, f32)],
    max_chars: usize,
) -> (usize, usize) {
    let window_end_for = |start: usize| {
        let first_char = boundaries.partition_point(|&offset| offset < start);
        boundaries[(first_char + max_chars).min(boundaries.len() - 1)]
    };
    let mut best = (0usize, 0usize, f32::MIN);
    for &(window_start, _, _) in matches {
        let window_end = window_end_for(window_start);
        let weight: f32 = matches
            .iter()
            .filter(|&&(start, end, _)| start >= window_start && end <= window_end)
            .map(|&(_, _, weight)| weight)
            .sum();
        if weight > best.2 {
            best = (window_start, window_end, weight);
        }
    }
    (best.0, best.1)
}

/// Moves the window's start left while the text after it ends before `max_chars` characters.
fn widen_to_the_left(
    boundaries: &[usize],
    start: usize,
    end: usize,
    max_chars: usize,
) -> (usize, usize) {
    let start_index = boundaries.partition_point(|&offset| offset < start);
    let end_index = boundaries.partition_point(|&offset| offset < end);
    let room = max_chars.saturating_sub(end_index - start_index);
    let lead = room.min(LEAD_CHARS).min(start_index);
    (boundaries[start_index - lead], end)
}

/// Characters of context kept before the first match when there is room.
const LEAD_CHARS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tokenizer::Analyzer;

    fn token(text: &str, from: usize, to: usize) -> Token {
        Token {
            offset_from: from,
            offset_to: to,
            text: text.to_string(),
            ..Token::default()
        }
    }

    #[test]
    fn overlapping_tokens_are_merged_not_panicked_on() {
        let text = "请问身份验证器怎么绑定";
        // A long word, then sub-words inside it: offsets step backwards.
        let tokens = vec![
            token("身份验证器", 6, 21),
            token("身份", 6, 12),
            token("验证", 12, 18),
            token("绑定", 27, 33),
        ];
        let highlighter = Highlighter::from_terms(&["身份验证器", "验证", "绑定"]);
        let html = highlighter.excerpt_html(text, &tokens, 160).unwrap();
        assert_eq!(html, "请问<mark>身份验证器</mark>怎么<mark>绑定</mark>");
    }

    #[test]
    fn real_analyzer_tokens_with_long_words_highlight_safely() {
        let analyzer = Analyzer::new();
        let text =
            "打开身份验证器应用，扫描二维码完成绑定。中华人民共和国公民身份证号码需要实名认证。";
        let tokens = analyzer.word_tokens(text);
        let highlighter = Highlighter::from_terms(&["验证", "身份证", "中华人民共和国", "华人"]);
        let html = highlighter.excerpt_html(text, &tokens, 12).unwrap();
        assert!(html.contains("<mark>"), "{html}");
        let plain = html.replace("<mark>", "").replace("</mark>", "");
        assert!(plain.chars().count() <= 12, "{plain}");
        assert!(text.contains(&plain), "{plain}");
    }

    #[test]
    fn the_window_with_most_matches_wins_and_text_is_escaped() {
        let text =
            "退款<b>说明</b>。这里什么也没有，只是填充的文字。退款到账需要多久，退款会原路返回。";
        let analyzer = Analyzer::new();
        let tokens = analyzer.word_tokens(text);
        let highlighter = Highlighter::from_terms(&["退款"]);
        let html = highlighter.excerpt_html(text, &tokens, 20).unwrap();
        // The later window holds two matches, the first only one.
        assert_eq!(html.matches("<mark>退款</mark>").count(), 2, "{html}");
        let first = Highlighter::from_terms(&["说明"])
            .excerpt_html(text, &tokens, 20)
            .unwrap();
        assert!(
            first.starts_with("<mark>说明</mark>&lt;&#47;b&gt;"),
            "{first}"
        );
    }

    #[test]
    fn literal_matches_give_the_excerpt_tokenizing_gives() {
        let analyzer = Analyzer::new();
        let filler = "这是一段与问题无关的说明文字，用来把正文撑长。".repeat(20);
        let text = format!("{filler}退款到账需要多久？退款会按原支付方式退回。{filler}");
        let highlighter = Highlighter::from_terms(&["退款", "到账"]);
        let tokenized = highlighter
            .excerpt_html(&text, &analyzer.word_tokens(&text), 40)
            .unwrap();
        let literal = highlighter.literal_matches(&text);
        assert_eq!(literal.len(), 3);
        let html = highlighter.excerpt_html(&text, &literal, 40).unwrap();
        let plain = |html: &str| html.replace("<mark>", "").replace("</mark>", "");
        assert_eq!(plain(&html), plain(&tokenized));
        // jieba cuts 退款到账需要 without 到账; the literal search still marks what the visitor typed.
        assert!(
            html.starts_with("<mark>退款</mark><mark>到账</mark>需要多久？<mark>退款</mark>"),
            "{html}"
        );
        let latin = Highlighter::from_terms(&["iphone"]).literal_matches("换新 iPhone 15");
        assert_eq!(
            (latin.len(), latin[0].offset_from, latin[0].offset_to),
            (1, 7, 13)
        );
        let words = Highlighter::from_terms(&["pay", "支付"]).literal_matches("用alipay支付，pay");
        let mut starts: Vec<usize> = words.iter().map(|token| token.offset_from).collect();
        starts.sort();
        assert_eq!(starts, [9, 18], "pay inside alipay is not a match");
        // Traditional characters only match after normalisation: nothing literal, tokenize it all.
        assert!(Highlighter::from_terms(&["退款"])
            .literal_matches("退貨與退錢")
            .is_empty());
    }

    #[test]
    fn no_match_gives_none() {
        let highlighter = Highlighter::from_terms(&["发票"]);
        let tokens = vec![token("退款", 0, 6)];
        assert!(highlighter.excerpt_html("退款", &tokens, 160).is_none());
    }
}
