//! An article file as an editor or a `PUT /api/v1/kb/articles/{id}` may write it: front matter and
//! markdown parsed into an article, then the markdown rendered to the HTML the pages insert.
#![no_main]

use kefu::articles::{parse_article, render_html};
use kefu::domain::ArticleId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The folder gives the default category and the file name the default id.
    if let Ok(article) = parse_article("fuzz/article.md", data) {
        // Whatever the front matter says, an accepted article carries an id the API accepts again.
        assert!(
            ArticleId::parse(article.id.as_str()).is_ok(),
            "accepted an article with id {:?}",
            article.id
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Rendering must end without a panic for any text. The output is not checked for markup here:
    // text nodes keep `"` and attribute values keep `<` and `>`, so string checks are not sound
    // (the first run's only failure was such a check reading a table cell `="javascript:`).
    std::hint::black_box(render_html(text));
});
