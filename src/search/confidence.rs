//! How sure a search hit is to answer the message: a number from 0 to 1 that means the same for
//! every query and every knowledge base, unlike BM25 scores (which grow with the query's length and
//! the knowledge base's statistics).
//!
//! It combines three signals, each measured on the shared relevance and abstention sets:
//! - **the closest sentence**: how well the message's informative words match the hit's best
//!   sentence (title, similar question, heading or a sentence of the body), as a weighted F1, and how
//!   many characters and character pairs they share (Dice). A paraphrase of an article's question
//!   scores high on both; chit-chat that shares one word with a long answer scores low.
//! - **informativeness**: words weigh by their IDF in general Chinese (jieba's table) minus a floor,
//!   so 的, 我, 什么 weigh nothing and 耳机, 花呗 weigh most.
//! - **what the knowledge base is about**: the matched word most characteristic of the knowledge base
//!   (far more frequent there than in general Chinese, like 花呗 in a payment FAQ) adds a little;
//!   matching only words the knowledge base uses no more than anyone (朋友, 可爱) adds nothing.
//!
//! A hit that shares no word of two or more characters (or a Latin word) with the message has
//! confidence 0: a match on single characters (机 in 耳机 and 手机) never makes a suggestion.

use super::text::{is_cjk, normalize};
use super::tokenizer::Analyzer;

/// General-language IDF below which a word carries no information (的 0.9, 我 2.7, 什么 3.6, 吗 4.6).
/// Measured on the relevance and abstention sets: floors 2, 3 and 4 were tried; 4 separated best.
const INFORMATIVE_FLOOR: f32 = 4.0;
/// Weight of how characteristic of the knowledge base the best matched word is, per unit of its
/// log-lift, and the lift's clamp. Measured: 0.05 beat 0 and 0.1.
const CHARACTERISTIC_WEIGHT: f32 = 0.05;
const LIFT_RANGE: (f32, f32) = (-5.0, 10.0);
/// Of a hit's body, only the beginning is judged: articles lead with the answer, and the cost of a
/// search stays bounded whatever an editor pastes into one.
const MAX_JUDGED_BODY_CHARS: usize = 3000;
/// Sentences judged at most per hit (title and similar questions first).
const MAX_JUDGED_SENTENCES: usize = 60;

/// Words that say how something is asked, not what: every question has them, in a customer-service
/// message far more often than in the news text of jieba's IDF table, so a match on them alone
/// (什么意思 in 断言是什么意思 and 还款是什么意思) tells nothing.
const INTERROGATIVES: &[&str] = &[
    "怎么",
    "怎样",
    "怎么样",
    "怎么办",
    "怎么回事",
    "怎么弄",
    "怎么搞",
    "咋",
    "咋办",
    "如何",
    "为什么",
    "为何",
    "什么",
    "什么样",
    "是什么",
    "什么意思",
    "啥",
    "干啥",
    "哪",
    "哪里",
    "哪儿",
    "哪些",
    "哪个",
    "在哪",
    "在哪里",
    "多少",
    "几",
    "吗",
    "呢",
    "吧",
    "么",
    "能否",
    "能不能",
    "可不可以",
    "是不是",
    "有没有",
    "会不会",
    "要不要",
    "可以",
    "请问",
    "一下",
    "知道",
    "谁",
    "一般",
    "意思",
    "问题",
    "情况",
];

/// The analysed message, computed once per search.
#[derive(Debug, Clone, Default)]
pub struct MessageProfile {
    /// Distinct words with their informativeness.
    words: Vec<(String, f32)>,
    /// Distinct characters and adjacent character pairs of the normalised message, sorted.
    sorted_grams: Vec<Gram>,
    /// What a hit must share with the message (see [`telling_words`]), each with its IDF in general
    /// Chinese: every hit of a search asks for the same words' IDF, which costs a jieba cut each.
    telling: Vec<(String, f32)>,
}

impl MessageProfile {
    /// Profiles `message`.
    pub fn new(analyzer: &Analyzer, message: &str) -> MessageProfile {
        let words: Vec<(String, f32)> = analyzer
            .query_words(message)
            .into_iter()
            .map(|word| {
                let weight = analyzer.informativeness(&word);
                (word, weight)
            })
            .collect();
        let normalized = normalize(message).text;
        let ideographs: Vec<char> = normalized.chars().collect();
        let mut pairs: Vec<String> = Vec::new();
        for pair in ideographs.windows(2) {
            if pair.iter().all(|c| is_cjk(*c)) {
                let pair: String = pair.iter().collect();
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
        let mut sorted_grams = Vec::new();
        distinct_grams(&normalized, &mut sorted_grams);
        let telling = telling_words(&words, &pairs)
            .map(|word| (word.to_string(), analyzer.general_idf(word)))
            .collect();
        MessageProfile {
            words,
            sorted_grams,
            telling,
        }
    }

    /// Whether the message had nothing to match.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Words of two or more characters, or Latin words, and pairs of adjacent ideographs (jieba cuts
/// words it does not know into characters, 花呗 → 花 呗, and a pair found in the hit is a
/// two-character match all the same): what a hit must share with the message (interrogatives aside).
fn telling_words<'a>(
    words: &'a [(String, f32)],
    pairs: &'a [String],
) -> impl Iterator<Item = &'a str> {
    words
        .iter()
        .map(|(word, _)| word.as_str())
        .filter(|word| is_telling(word) && !is_interrogative(word))
        .chain(
            pairs
                .iter()
                .map(String::as_str)
                .filter(|pair| !is_interrogative(pair)),
        )
}

/// What is known of a hit to judge it.
#[derive(Debug, Clone, Copy)]
pub struct HitText<'a> {
    /// Title.
    pub title: &'a str,
    /// Similar questions.
    pub questions: &'a [String],
    /// Body (markdown).
    pub body: &'a str,
}

/// How characteristic a word is of the knowledge base: how many of its `documents` contain it.
pub trait DocumentFrequency {
    /// Documents containing `word`, and all documents.
    fn document_frequency(&self, word: &str) -> (u64, u64);
}

/// The confidence (0 to 1) that `hit` answers the message of `profile`. Without `frequencies` (a
/// quick reply, which belongs to no knowledge base) the knowledge base's signal counts as neutral.
pub fn confidence(
    analyzer: &Analyzer,
    profile: &MessageProfile,
    hit: HitText<'_>,
    frequencies: Option<&dyn DocumentFrequency>,
) -> f32 {
    if profile.is_empty() {
        return 0.0;
    }
    judge(analyzer, profile, &JudgedText::new(hit), frequencies)
}

/// A hit's text prepared for judging: its normalised text cut into sentences, each with its distinct
/// characters and character pairs and, once a message first needs them, its words with their
/// informativeness. It depends on the article alone, so the article index keeps one per article
/// revision and a long answer is normalised, cut and tokenized once, not on every search it is found by.
#[derive(Debug)]
pub struct JudgedText {
    /// Title, similar questions and the judged beginning of the body, normalised, one per line.
    whole: String,
    sentences: Vec<JudgedSentence>,
}

/// One sentence of a [`JudgedText`].
#[derive(Debug)]
struct JudgedSentence {
    /// Byte range of the sentence in the whole text.
    start: usize,
    end: usize,
    /// Distinct grams, sorted.
    grams: Box<[Gram]>,
    /// Cut when a message first needs them: only sentences holding an informative word of some
    /// message ever are.
    words: std::sync::OnceLock<SentenceWords>,
}

/// The distinct words of a sentence with their informativeness, in the order jieba cut them.
#[derive(Debug)]
struct SentenceWords {
    words: Box<[(Box<str>, f32)]>,
    /// Their informativeness summed.
    mass: f32,
}

impl JudgedText {
    /// Prepares `hit` for judging: at most [`MAX_JUDGED_BODY_CHARS`] of its body and
    /// [`MAX_JUDGED_SENTENCES`] sentences.
    pub fn new(hit: HitText<'_>) -> JudgedText {
        let body_end = hit
            .body
            .char_indices()
            .nth(MAX_JUDGED_BODY_CHARS)
            .map_or(hit.body.len(), |(end, _)| end);
        let whole = normalize(&format!(
            "{}\n{}\n{}",
            hit.title,
            hit.questions.join("\n"),
            &hit.body[..body_end]
        ))
        .text;
        let mut buffer: Vec<Gram> = Vec::new();
        let base = whole.as_ptr() as usize;
        let sentences = sentences(&whole)
            .take(MAX_JUDGED_SENTENCES)
            .filter_map(|sentence| {
                distinct_grams(sentence, &mut buffer);
                if buffer.is_empty() {
                    return None;
                }
                let start = sentence.as_ptr() as usize - base;
                Some(JudgedSentence {
                    start,
                    end: start + sentence.len(),
                    grams: buffer.as_slice().into(),
                    words: std::sync::OnceLock::new(),
                })
            })
            .collect();
        JudgedText { whole, sentences }
    }

    /// An estimate of the memory held, in bytes, for bounding a cache of them.
    pub fn size_estimate(&self) -> usize {
        let sentences: usize = self
            .sentences
            .iter()
            .map(|sentence| {
                std::mem::size_of::<JudgedSentence>()
                    + sentence.grams.len() * std::mem::size_of::<Gram>()
                    + sentence
                        .words
                        .get()
                        .map_or(0, |SentenceWords { words, .. }| {
                            words
                                .iter()
                                .map(|(word, _)| {
                                    word.len() + std::mem::size_of::<(Box<str>, f32)>()
                                })
                                .sum()
                        })
            })
            .sum();
        std::mem::size_of::<JudgedText>() + self.whole.len() + sentences
    }

    /// Bytes of the normalised text.
    pub fn text_len(&self) -> usize {
        self.whole.len()
    }

    fn sentence_text(&self, sentence: &JudgedSentence) -> &str {
        &self.whole[sentence.start..sentence.end]
    }
}

/// The confidence (0 to 1) that the prepared `hit` answers the message of `profile` (see
/// [`confidence`]).
pub fn judge(
    analyzer: &Analyzer,
    profile: &MessageProfile,
    hit: &JudgedText,
    frequencies: Option<&dyn DocumentFrequency>,
) -> f32 {
    if profile.is_empty() {
        return 0.0;
    }
    let whole = hit.whole.as_str();
    let shared: Vec<&(String, f32)> = profile
        .telling
        .iter()
        .filter(|(word, _)| whole.contains(word.as_str()))
        .collect();
    if shared.is_empty() {
        return 0.0;
    }
    let lift = frequencies.map_or(0.0, |frequencies| {
        shared
            .iter()
            .map(|(word, general_idf)| {
                let (containing, documents) = frequencies.document_frequency(word);
                let share = (containing as f32 + 0.5) / documents.max(1) as f32;
                share.ln() + general_idf
            })
            .fold(f32::MIN, f32::max)
            .clamp(LIFT_RANGE.0, LIFT_RANGE.1)
    });

    let message_mass: f32 = profile.words.iter().map(|(_, weight)| weight).sum();
    let mut best_words = 0.0f32;
    let mut best_grams = 0.0f32;
    for sentence in &hit.sentences {
        best_grams = best_grams.max(dice(&profile.sorted_grams, &sentence.grams));
        let text = hit.sentence_text(sentence);
        // Only a sentence holding one of the message's informative words can share one as a word:
        // the others (most of a long answer) are never cut into words at all.
        let holds_a_word = profile
            .words
            .iter()
            .any(|(word, weight)| *weight > 0.0 && text.contains(word.as_str()));
        if !holds_a_word || message_mass <= 0.0 {
            continue;
        }
        let SentenceWords {
            words,
            mass: sentence_mass,
        } = sentence.words.get_or_init(|| {
            let words: Box<[(Box<str>, f32)]> = analyzer
                .normalized_words(text)
                .into_iter()
                .map(|word| {
                    let weight = analyzer.informativeness(&word);
                    (word.into_boxed_str(), weight)
                })
                .collect();
            let mass = words.iter().map(|(_, weight)| weight).sum();
            SentenceWords { words, mass }
        });
        let common_mass: f32 = words
            .iter()
            .filter(|(word, _)| profile.words.iter().any(|(own, _)| own.as_str() == &**word))
            .map(|(_, weight)| weight)
            .sum();
        if common_mass > 0.0 && *sentence_mass > 0.0 {
            let precision = common_mass / message_mass;
            let recall = common_mass / sentence_mass;
            best_words = best_words.max(2.0 * precision * recall / (precision + recall));
        }
    }
    ((best_words + best_grams + CHARACTERISTIC_WEIGHT * lift) / 2.0).clamp(0.0, 1.0)
}

/// Whether a word can make a match on its own: two or more characters, or a Latin word or number.
fn is_telling(word: &str) -> bool {
    word.chars().count() > 1 || word.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The sentences of a hit's normalised text (title, similar questions and body, one per line): its
/// lines cut at sentence ends, without markdown list and heading marks. Normalisation turned
/// full-width ？！； into ASCII.
fn sentences(whole: &str) -> impl Iterator<Item = &str> {
    whole
        .split(['\n', '。', '?', '!', ';'])
        .map(|line| line.trim_matches(|c: char| c.is_whitespace() || "-*#>|".contains(c)))
        .filter(|line| !line.is_empty())
}

/// A character (`'\0'` second) or a pair of adjacent characters.
type Gram = (char, char);

/// The distinct characters and adjacent pairs of ideographs, letters and digits of `text` into
/// `buffer`, sorted.
fn distinct_grams(text: &str, buffer: &mut Vec<Gram>) {
    buffer.clear();
    let mut previous: Option<char> = None;
    for c in text.chars().filter(|c| is_cjk(*c) || c.is_alphanumeric()) {
        buffer.push((c, '\0'));
        if let Some(previous) = previous {
            buffer.push((previous, c));
        }
        previous = Some(c);
    }
    buffer.sort_unstable();
    buffer.dedup();
}

/// Dice of the message's distinct grams and a sentence's, both sorted: a merge of the two lists
/// instead of a hash lookup per gram of a long sentence.
fn dice(message: &[Gram], sentence: &[Gram]) -> f32 {
    let (mut left, mut right, mut common) = (0, 0, 0usize);
    while left < message.len() && right < sentence.len() {
        match message[left].cmp(&sentence[right]) {
            std::cmp::Ordering::Less => left += 1,
            std::cmp::Ordering::Greater => right += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                left += 1;
                right += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    2.0 * common as f32 / (message.len() + sentence.len()) as f32
}

/// The informativeness of a word of general-language IDF `idf`.
pub(super) fn informative_weight(idf: f32) -> f32 {
    (idf - INFORMATIVE_FLOOR).max(0.0)
}

/// Whether `word` only says how a question is asked (怎么办, 什么意思).
pub(super) fn is_interrogative(word: &str) -> bool {
    INTERROGATIVES.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A knowledge base of `documents` where the listed words occur in the given number of them.
    struct Frequencies(u64, Vec<(&'static str, u64)>);

    impl DocumentFrequency for Frequencies {
        fn document_frequency(&self, word: &str) -> (u64, u64) {
            let containing = self
                .1
                .iter()
                .find(|(known, _)| *known == word)
                .map_or(0, |(_, count)| *count);
            (containing, self.0)
        }
    }

    fn score(message: &str, title: &str, questions: &[&str], body: &str) -> f32 {
        let analyzer = Analyzer::new();
        let profile = MessageProfile::new(&analyzer, message);
        let questions: Vec<String> = questions.iter().map(|q| q.to_string()).collect();
        let frequencies = Frequencies(50, vec![("耳机", 2), ("质量问题", 3), ("手机号", 2)]);
        confidence(
            &analyzer,
            &profile,
            HitText {
                title,
                questions: &questions,
                body,
            },
            Some(&frequencies),
        )
    }

    #[test]
    fn a_paraphrase_of_a_question_is_confident() {
        let paraphrase = score(
            "耳机没有声音了怎么办",
            "耳机、音箱没有声音怎么办",
            &["蓝牙耳机连上了但是没有声音"],
            "请先充电，再重新配对。",
        );
        assert!(paraphrase > 0.6, "{paraphrase}");
    }

    #[test]
    fn a_match_on_single_characters_has_no_confidence() {
        // 耳机 and 手机号 share only 机.
        let single = score("耳机没声音", "修改绑定手机号", &["换了手机号怎么办"], "");
        assert_eq!(single, 0.0);
    }

    #[test]
    fn chit_chat_sharing_a_common_word_scores_below_a_real_question() {
        let body = "如果检测结论为非质量问题，商品会原样寄回。我们很喜欢听到您的意见，欢迎您和朋友再次光临。";
        let chit_chat = score("让我们成为朋友吧", "商品质量问题处理", &[], body);
        let question = score("东西有质量问题怎么办", "商品质量问题处理", &[], body);
        assert!(chit_chat < question, "{chit_chat} vs {question}");
        assert!(chit_chat < 0.3, "{chit_chat}");
    }

    #[test]
    fn confidence_stays_between_0_and_1() {
        let same = score("耳机", "耳机", &["耳机"], "耳机");
        assert!((0.0..=1.0).contains(&same), "{same}");
        assert!(same > 0.9, "{same}");
        assert_eq!(score("", "耳机", &[], ""), 0.0);
        assert_eq!(score("！？", "耳机", &[], ""), 0.0);
    }

    #[test]
    fn a_prepared_text_judges_every_message_as_a_fresh_one() {
        // The index keeps one prepared text per article and judges each search's message against
        // it; the words a first message had cut must not change what a second one gets.
        let analyzer = Analyzer::new();
        let questions = vec!["蓝牙耳机连上了但是没有声音".to_string()];
        let hit = HitText {
            title: "耳机、音箱没有声音怎么办",
            questions: &questions,
            body: "请先充电，再重新配对。如果还是没有声音，请联系客服检测质量问题。",
        };
        let prepared = JudgedText::new(hit);
        for message in [
            "耳机没有声音了怎么办",
            "音箱要怎么充电",
            "耳机没有声音了怎么办",
            "今天天气真好",
        ] {
            let profile = MessageProfile::new(&analyzer, message);
            let fresh = confidence(&analyzer, &profile, hit, None);
            let reused = judge(&analyzer, &profile, &prepared, None);
            assert_eq!(fresh.to_bits(), reused.to_bits(), "{message}");
        }
        assert!(prepared.size_estimate() > prepared.text_len());
    }

    #[test]
    fn informative_words_outweigh_function_words() {
        let analyzer = Analyzer::new();
        assert!(analyzer.informativeness("的") == 0.0);
        assert!(analyzer.informativeness("耳机") > analyzer.informativeness("怎么"));
    }
}
