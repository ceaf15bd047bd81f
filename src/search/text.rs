//! Text normalisation before tokenizing: Traditional → Simplified Chinese, full-width → half-width
//! (NFKC) and lower case, keeping a map back to the original byte offsets so that snippets highlight
//! the text the editor wrote.

use unicode_normalization::UnicodeNormalization;

/// Normalised text with, for every byte of it, the byte range of the original character it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedText {
    /// The normalised text.
    pub text: String,
    starts: Vec<u32>,
    ends: Vec<u32>,
}

impl NormalizedText {
    /// Original byte range of the normalised byte range `from..to`.
    pub fn original_range(&self, from: usize, to: usize) -> (usize, usize) {
        if self.starts.is_empty() || from >= to {
            return (0, 0);
        }
        (self.starts[from] as usize, self.ends[to - 1] as usize)
    }
}

/// Normalises `original`.
///
/// Traditional characters are converted by zhconv with the whole text as context; if that conversion
/// changes the number of characters (a rare phrase-level rewrite), the text is kept unconverted so that
/// offsets stay exact.
pub fn normalize(original: &str) -> NormalizedText {
    let converted = if original.is_ascii() {
        None
    } else {
        let simplified = zhconv::zhconv(original, zhconv::Variant::ZhHans);
        (simplified != original && simplified.chars().count() == original.chars().count())
            .then_some(simplified)
    };
    let source_chars: Box<dyn Iterator<Item = char>> = match &converted {
        Some(simplified) => Box::new(simplified.chars()),
        None => Box::new(original.chars()),
    };
    let mut text = String::with_capacity(original.len());
    let mut starts = Vec::with_capacity(original.len());
    let mut ends = Vec::with_capacity(original.len());
    for ((original_start, original_char), source_char) in original.char_indices().zip(source_chars)
    {
        let original_end = (original_start + original_char.len_utf8()) as u32;
        let before = text.len();
        if source_char.is_ascii() {
            text.push(source_char.to_ascii_lowercase());
        } else if is_cjk(source_char) && !is_cjk_compatibility(source_char) {
            // Unified ideographs are their own NFKC form and have no case; most text is these.
            text.push(source_char);
        } else {
            for folded in std::iter::once(source_char)
                .nfkc()
                .flat_map(char::to_lowercase)
            {
                text.push(folded);
            }
        }
        for _ in before..text.len() {
            starts.push(original_start as u32);
            ends.push(original_end);
        }
    }
    NormalizedText { text, starts, ends }
}

/// Whether `c` is a CJK ideograph (the characters that get bigrams).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// CJK compatibility ideographs, which NFKC maps to unified ones.
fn is_cjk_compatibility(c: char) -> bool {
    matches!(c as u32, 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Whether a token carries meaning (is not only punctuation, symbols or spaces).
pub fn is_meaningful(token: &str) -> bool {
    token.chars().any(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_and_case_are_folded() {
        assert_eq!(normalize("ＡＢＣ１２３，Ｈｅｌｌｏ").text, "abc123,hello");
        assert_eq!(normalize("iPhone 退款").text, "iphone 退款");
    }

    #[test]
    fn traditional_becomes_simplified() {
        assert_eq!(normalize("退貨運費").text, "退货运费");
        assert_eq!(normalize("電話號碼").text, "电话号码");
    }

    #[test]
    fn offsets_point_back_into_the_original() {
        let original = "Ａ退貨b";
        let normalized = normalize(original);
        assert_eq!(normalized.text, "a退货b");
        let start = normalized.text.find('退').unwrap();
        let end = start + "退货".len();
        let (from, to) = normalized.original_range(start, end);
        assert_eq!(&original[from..to], "退貨");
    }

    #[test]
    fn punctuation_only_tokens_are_not_meaningful() {
        assert!(!is_meaningful("，。！"));
        assert!(!is_meaningful(" "));
        assert!(is_meaningful("退款"));
        assert!(is_meaningful("a1"));
    }
}
