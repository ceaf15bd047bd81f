//! Cells of the CSV files kefu writes for Excel (the transcript, the quick-reply export): text a
//! visitor or a colleague typed must not run as a formula when the file is opened (CSV injection).
//!
//! As OWASP describes, a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is written
//! with a single quote in front, which spreadsheets show as text and hide. A cell that starts with a
//! quote itself gets one more, so that [`unescape_cell`] gives back exactly what was escaped and an
//! export imports unchanged.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The cell as written to a CSV file.
pub fn escape_cell(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some(first) if first == '\'' || FORMULA_TRIGGERS.contains(&first) => {
            Cow::Owned(format!("'{text}"))
        }
        _ => Cow::Borrowed(text),
    }
}

/// The text of a cell read from a CSV file: the quote [`escape_cell`] added is removed.
pub fn unescape_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_and_come_back_unchanged() {
        for formula in [
            "=HYPERLINK(\"http://evil.example\",\"点我\")",
            "=cmd|' /C calc'!A0",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
        ] {
            let escaped = escape_cell(formula);
            assert!(escaped.starts_with('\''), "{formula:?} not escaped");
            assert_eq!(unescape_cell(&escaped), formula);
        }
        for text in ["你好", "'已经有引号", "''两个", "", "1-2", "a=b"] {
            assert_eq!(unescape_cell(&escape_cell(text)), text, "{text:?}");
        }
        assert_eq!(escape_cell("你好"), "你好");
        assert_eq!(escape_cell("1-2"), "1-2");
    }
}
