//! Query expansion from `kb/_synonyms.txt`: one group of interchangeable words per line,
//! comma-separated (`退款,退钱,返款`); `#` starts a comment line.

use std::collections::HashMap;

use super::text::normalize;

/// Synonym groups, looked up by normalised word.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    groups: Vec<Vec<String>>,
    group_of_word: HashMap<String, Vec<usize>>,
}

impl Synonyms {
    /// Parses the synonyms file. Lines with fewer than two words carry no synonym and are skipped.
    pub fn parse(text: &str) -> Synonyms {
        let mut synonyms = Synonyms::default();
        for line in text.lines() {
            let line = line.trim().trim_start_matches('\u{feff}');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut group: Vec<String> = Vec::new();
            for word in line.split([',', '，', '、']) {
                let normalized = normalize(word.trim()).text;
                if !normalized.is_empty() && !group.contains(&normalized) {
                    group.push(normalized);
                }
            }
            if group.len() < 2 {
                continue;
            }
            let group_index = synonyms.groups.len();
            for word in &group {
                synonyms
                    .group_of_word
                    .entry(word.clone())
                    .or_default()
                    .push(group_index);
            }
            synonyms.groups.push(group);
        }
        synonyms
    }

    /// Every word that appears in some group (to teach the segmenter to keep them whole).
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(String::as_str)
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group was read.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The other words of every group containing one of `words` (which must be normalised), without
    /// repeating `words` themselves.
    pub fn expand(&self, words: &[String]) -> Vec<String> {
        let mut expansions: Vec<String> = Vec::new();
        for word in words {
            let Some(group_indexes) = self.group_of_word.get(word) else {
                continue;
            };
            for &group_index in group_indexes {
                for synonym in &self.groups[group_index] {
                    if !words.contains(synonym) && !expansions.contains(synonym) {
                        expansions.push(synonym.clone());
                    }
                }
            }
        }
        expansions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_expand_each_other() {
        let synonyms = Synonyms::parse("# comment\n退款,退钱，返款\n快递、物流\n单独\n");
        assert_eq!(synonyms.len(), 2);
        assert_eq!(synonyms.expand(&["退钱".to_string()]), ["退款", "返款"]);
        assert_eq!(
            synonyms.expand(&["物流".to_string(), "快递".to_string()]),
            Vec::<String>::new()
        );
        assert!(synonyms.expand(&["单独".to_string()]).is_empty());
    }

    #[test]
    fn words_are_normalised() {
        let synonyms = Synonyms::parse("電話,手机号,ＴＥＬ\n");
        assert_eq!(synonyms.expand(&["电话".to_string()]), ["手机号", "tel"]);
    }
}
