//! Word associations learned from the knowledge base itself: the words an article's title, similar
//! questions and keywords use together name one thing (a similar question 耳机有杂音 under the title
//! 商品质量问题 ties 耳机 to 商品质量), so a short, colloquial question can be expanded with the
//! knowledge base's own words for it.
//!
//! Built from every article's informative words (its "bag"): two words are associated when they share
//! more articles than chance would give (normalised PMI), and at least [`MIN_SHARED_ARTICLES`] of
//! them, since a pair seen in one article only points back at that article, which the word already
//! finds. Each word keeps its [`MAX_PER_WORD`] strongest associations, so the table stays a few
//! entries per word of the knowledge base's vocabulary however large it grows.

use std::collections::HashMap;

use super::confidence::is_interrogative;
use super::tokenizer::Analyzer;

/// Articles two words must share to be associated.
const MIN_SHARED_ARTICLES: u32 = 2;
/// Associations kept per word, strongest first.
const MAX_PER_WORD: usize = 4;
/// Normalised PMI below which two words are no more than loosely related.
const MIN_STRENGTH: f32 = 0.3;
/// Words taken from one article: a long article's vocabulary would otherwise make its pairs (the
/// square of its words) dominate the counting time.
const MAX_BAG_WORDS: usize = 48;
/// Words of the knowledge base that may be associated at most (the most frequent ones win): the
/// bound on memory however large the knowledge base grows.
const MAX_VOCABULARY: usize = 50_000;

/// For each word, the words the knowledge base associates with it, strongest first.
#[derive(Debug, Clone, Default)]
pub struct Associations {
    related: HashMap<String, Vec<(String, f32)>>,
}

impl Associations {
    /// Learns associations from the texts of each article (one inner iterator per article: its
    /// title, similar questions and keywords), cut into words by `analyzer`.
    pub fn learn<'a, Articles, Texts>(analyzer: &Analyzer, articles: Articles) -> Associations
    where
        Articles: IntoIterator<Item = Texts>,
        Texts: IntoIterator<Item = &'a str>,
    {
        let mut builder = AssociationBuilder::default();
        for texts in articles {
            let mut bag: Vec<String> = Vec::new();
            for text in texts {
                for word in analyzer.query_words(text) {
                    if bag.len() < MAX_BAG_WORDS && !bag.contains(&word) {
                        bag.push(word);
                    }
                }
            }
            builder.add(analyzer, bag);
        }
        builder.finish()
    }

    /// Number of words with at least one association.
    pub fn len(&self) -> usize {
        self.related.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.related.is_empty()
    }

    /// The words associated with `word`, strongest first, with their strength (0 to 1).
    pub fn of(&self, word: &str) -> &[(String, f32)] {
        self.related.get(word).map_or(&[], Vec::as_slice)
    }

    /// Up to `limit` words associated with any of `words` and not among `words` or `known`, each
    /// with the strongest strength it was reached by, strongest first.
    pub fn expand(&self, words: &[String], known: &[String], limit: usize) -> Vec<(String, f32)> {
        let mut found: Vec<(String, f32)> = Vec::new();
        for word in words {
            for (associated, strength) in self.of(word) {
                if words.contains(associated) || known.contains(associated) {
                    continue;
                }
                match found.iter_mut().find(|(seen, _)| seen == associated) {
                    Some((_, best)) => *best = best.max(*strength),
                    None => found.push((associated.clone(), *strength)),
                }
            }
        }
        found.sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)));
        found.truncate(limit);
        found
    }
}

/// Counts words and pairs of words per article.
#[derive(Default)]
struct AssociationBuilder {
    ids: HashMap<String, u32>,
    words: Vec<String>,
    /// Whether each word can make an association (informative, not an interrogative).
    usable: HashMap<String, bool>,
    bags: Vec<Vec<u32>>,
}

impl AssociationBuilder {
    fn add(&mut self, analyzer: &Analyzer, bag: Vec<String>) {
        let mut ids: Vec<u32> = Vec::new();
        for word in bag {
            let usable = *self
                .usable
                .entry(word.clone())
                .or_insert_with_key(|word| is_associable(analyzer, word));
            if !usable {
                continue;
            }
            let next = self.words.len() as u32;
            let id = *self.ids.entry(word.clone()).or_insert(next);
            if id == next {
                self.words.push(word);
            }
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        self.bags.push(ids);
    }

    fn finish(self) -> Associations {
        let articles = self.bags.len() as f32;
        let mut frequency = vec![0u32; self.words.len()];
        for bag in &self.bags {
            for &id in bag {
                frequency[id as usize] += 1;
            }
        }
        // Only words in enough articles can share enough of them; the most frequent ones first when
        // the vocabulary is larger than its bound.
        let mut candidates: Vec<u32> = (0..self.words.len() as u32)
            .filter(|&id| frequency[id as usize] >= MIN_SHARED_ARTICLES)
            .collect();
        candidates.sort_by_key(|&id| std::cmp::Reverse(frequency[id as usize]));
        candidates.truncate(MAX_VOCABULARY);
        let mut kept = vec![false; self.words.len()];
        for &id in &candidates {
            kept[id as usize] = true;
        }
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
        for bag in &self.bags {
            let bag: Vec<u32> = bag
                .iter()
                .copied()
                .filter(|&id| kept[id as usize])
                .collect();
            for (position, &first) in bag.iter().enumerate() {
                for &second in &bag[position + 1..] {
                    *pairs.entry((first, second)).or_insert(0) += 1;
                }
            }
        }
        let mut related: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for ((first, second), shared) in pairs {
            if shared < MIN_SHARED_ARTICLES {
                continue;
            }
            let strength = normalized_pmi(
                shared as f32,
                frequency[first as usize] as f32,
                frequency[second as usize] as f32,
                articles,
            );
            if strength < MIN_STRENGTH {
                continue;
            }
            related.entry(first).or_default().push((second, strength));
            related.entry(second).or_default().push((first, strength));
        }
        let related = related
            .into_iter()
            .map(|(id, mut associated)| {
                associated.sort_by(|left, right| {
                    right.1.total_cmp(&left.1).then_with(|| {
                        self.words[left.0 as usize].cmp(&self.words[right.0 as usize])
                    })
                });
                associated.truncate(MAX_PER_WORD);
                let associated = associated
                    .into_iter()
                    .map(|(other, strength)| (self.words[other as usize].clone(), strength))
                    .collect();
                (self.words[id as usize].clone(), associated)
            })
            .collect();
        Associations { related }
    }
}

/// Normalised pointwise mutual information of two words found together in `shared` of `articles`
/// articles, alone in `first` and `second`: 1 when they only ever occur together, 0 when
/// independent. Unlike plain PMI it does not favour rare words without bound.
fn normalized_pmi(shared: f32, first: f32, second: f32, articles: f32) -> f32 {
    let joint = shared / articles;
    if joint >= 1.0 {
        // In every article: as common as words get, nothing to tell apart.
        return 0.0;
    }
    let pmi = (shared * articles / (first * second)).ln();
    // Rounding can carry a pair that only ever occurs together just above 1.
    (pmi / -joint.ln()).min(1.0)
}

/// Whether `word` may be associated: it says something (informative in general Chinese, two or more
/// characters or a Latin word) and is not the way a question is asked (怎么办).
fn is_associable(analyzer: &Analyzer, word: &str) -> bool {
    let telling = word.chars().count() > 1 || word.chars().all(|c| c.is_ascii_alphanumeric());
    telling && !is_interrogative(word) && analyzer.informativeness(word) > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn(articles: &[&[&str]]) -> Associations {
        let analyzer = Analyzer::new();
        Associations::learn(
            &analyzer,
            articles.iter().map(|texts| texts.iter().copied()),
        )
    }

    #[test]
    fn a_word_of_similar_questions_maps_to_the_titles_words() {
        let associations = learn(&[
            &["商品质量问题", "耳机有杂音", "耳机坏了"],
            &["商品质量问题处理", "买的耳机没声音"],
            &["退款多久到账", "退钱要几天"],
            &["修改收货地址", "地址填错了"],
            &["发票怎么开", "开发票"],
        ]);
        let related: Vec<&str> = associations
            .of("耳机")
            .iter()
            .map(|(word, _)| word.as_str())
            .collect();
        // jieba cuts the title 商品质量问题 into 商品质量 and 问题 (an interrogative-like word).
        assert!(related.contains(&"商品质量"), "{related:?}");
        let expanded = associations.expand(&["耳机".to_string()], &[], 3);
        assert!(
            expanded
                .iter()
                .any(|(word, strength)| word == "商品质量" && (0.0..=1.0).contains(strength)),
            "{expanded:?}"
        );
        // A pair seen in one article only is not learned: 退款 and 退钱 share a single article.
        assert!(associations.of("退钱").is_empty());
        // Interrogatives and function words are never associated.
        assert!(associations.of("怎么").is_empty());
    }

    #[test]
    fn the_table_stays_bounded() {
        // Every article names the same many words: each could be tied to all the others.
        let words: Vec<String> = (0..40).map(|n| format!("word{n}")).collect();
        let text = words.join(" ");
        let texts: Vec<&str> = vec![text.as_str(); 1];
        let many: Vec<&[&str]> = (0..5).map(|_| texts.as_slice()).collect();
        let mut articles = many.clone();
        articles.push(&["别的东西"]);
        let associations = learn(&articles);
        assert!(associations.len() <= 40);
        for word in &words {
            assert!(associations.of(word).len() <= MAX_PER_WORD);
        }
        // Expansion leaves out the query's own words and what is already known.
        let expanded = associations.expand(&words[..2], &words[2..4], 10);
        assert!(expanded.len() <= 10);
        assert!(expanded.iter().all(|(word, _)| !words[..4].contains(word)));
    }
}
