//! An article's markdown → HTML that is safe to insert into a page, of bounded nesting.
//!
//! The sanitiser's HTML parser does work proportional to the depth of open elements for every tag,
//! so a hostile article of 40 KB of `>` (40,000 nested quotes) or 100,000 nested `<div>`s took seconds
//! to minutes to render. Before sanitising, nesting is cut at [`MAX_RENDERED_DEPTH`]: markdown
//! containers (quotes, lists, emphasis, …) and raw HTML elements deeper than that lose their tags and
//! keep their text. Raw HTML is scanned with a deliberately simple reading that may see more opening
//! tags than a browser would, never fewer; since it may also believe a closing tag the parser ignores
//! (inside a comment, say), at most [`MAX_RAW_HTML_TAGS`] raw opening tags are kept per article, which
//! bounds the parser's work whatever the trick.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use super::parse::split_front_matter;

/// Deepest nesting of elements rendered: markdown containers and raw HTML elements together.
pub const MAX_RENDERED_DEPTH: usize = 32;
/// Raw HTML opening tags kept per article; later ones are dropped (their text stays).
pub const MAX_RAW_HTML_TAGS: usize = 2048;

/// Elements that never hold others, so they do not deepen the nesting.
const VOID_ELEMENTS: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Renders an article's markdown (front matter removed) to sanitised HTML whose nesting is at most
/// [`MAX_RENDERED_DEPTH`] deep.
pub fn render_html(markdown_file: &str) -> String {
    let body = match split_front_matter(
        markdown_file
            .strip_prefix('\u{feff}')
            .unwrap_or(markdown_file),
    ) {
        Ok((_, body)) => body,
        Err(_) => markdown_file,
    };
    let mut limiter = DepthLimiter::default();
    let events = Parser::new_ext(body, Options::all()).filter_map(|event| limiter.admit(event));
    let mut unsafe_html = String::with_capacity(body.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut unsafe_html, events);
    ammonia::clean(&unsafe_html)
}

/// Drops the tags of markdown containers and raw HTML elements nested too deep; see the module docs.
#[derive(Debug, Default)]
struct DepthLimiter {
    /// One entry per open markdown container: whether its tags were kept.
    markdown: Vec<bool>,
    /// Open markdown containers whose tags were kept.
    markdown_kept: usize,
    /// Open raw HTML elements: lower-cased name, and whether its tags were kept.
    html: Vec<(String, bool)>,
    /// Open raw HTML elements whose tags were kept.
    html_kept: usize,
    /// Raw HTML opening tags kept so far.
    html_opened: usize,
}

impl DepthLimiter {
    fn depth(&self) -> usize {
        self.markdown_kept + self.html_kept
    }

    fn admit<'a>(&mut self, event: Event<'a>) -> Option<Event<'a>> {
        match event {
            // An HTML block writes no element of its own: its raw HTML is counted tag by tag.
            Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => Some(event),
            Event::Start(tag) => {
                let keep = self.depth() < MAX_RENDERED_DEPTH;
                self.markdown.push(keep);
                if keep {
                    self.markdown_kept += 1;
                    Some(Event::Start(tag))
                } else {
                    None
                }
            }
            Event::End(tag) => {
                // pulldown-cmark's events are well nested: every end closes the newest start.
                let kept = self.markdown.pop().unwrap_or(false);
                if kept {
                    self.markdown_kept -= 1;
                    Some(Event::End(tag))
                } else {
                    None
                }
            }
            Event::Html(html) => Some(Event::Html(self.limit_raw_html(html))),
            Event::InlineHtml(html) => Some(Event::InlineHtml(self.limit_raw_html(html))),
            other => Some(other),
        }
    }

    /// Raw HTML with the tags beyond the limits removed. Every `<` written out is followed by what
    /// followed it in the source (a tag kept whole, `!` or `?`); any other `<` becomes `&lt;`, so a
    /// removed tag can never join the text around it into a new one.
    fn limit_raw_html<'a>(&mut self, html: CowStr<'a>) -> CowStr<'a> {
        if !html.contains('<') {
            return html;
        }
        let mut out = String::with_capacity(html.len());
        let mut rest: &str = &html;
        while let Some(start) = rest.find('<') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let (closing, name_start) = match after.strip_prefix('/') {
                Some(name_start) => (true, name_start),
                None => (false, after),
            };
            let starts_tag = name_start
                .chars()
                .next()
                .is_some_and(|first| first.is_ascii_alphabetic());
            if !starts_tag {
                if after.starts_with('!') || after.starts_with('?') {
                    out.push('<');
                } else {
                    out.push_str("&lt;");
                }
                rest = after;
                continue;
            }
            // The tag runs to the next `>` (or the end of this piece of HTML).
            let tag_end = rest[start..]
                .find('>')
                .map_or(rest.len(), |end| start + end + 1);
            let tag = &rest[start..tag_end];
            let name: String = name_start
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let keep = if closing {
                self.close_raw(&name)
            } else {
                self.open_raw(name)
            };
            if keep {
                out.push_str(tag);
            }
            rest = &rest[tag_end..];
        }
        out.push_str(rest);
        CowStr::from(out)
    }

    /// Whether to keep an opening tag of `name`.
    fn open_raw(&mut self, name: String) -> bool {
        if VOID_ELEMENTS.contains(&name.as_str()) {
            return true;
        }
        let keep = self.depth() < MAX_RENDERED_DEPTH && self.html_opened < MAX_RAW_HTML_TAGS;
        if keep {
            self.html_kept += 1;
            self.html_opened += 1;
        }
        self.html.push((name, keep));
        keep
    }

    /// Whether to keep a closing tag of `name`: only when it closes an element whose opening tag was
    /// kept; it closes whatever was opened after that element too.
    fn close_raw(&mut self, name: &str) -> bool {
        let Some(position) = self.html.iter().rposition(|(open, _)| open == name) else {
            return false;
        };
        let closed = self.html.split_off(position);
        self.html_kept -= closed.iter().filter(|(_, kept)| *kept).count();
        closed[0].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deepest nesting of `tag` elements in `html`.
    fn depth_of(html: &str, tag: &str) -> usize {
        let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
        let (mut depth, mut deepest) = (0usize, 0usize);
        let mut rest = html;
        while let Some(position) = rest.find('<') {
            rest = &rest[position..];
            if rest.starts_with(&close) {
                depth = depth.saturating_sub(1);
            } else if rest.starts_with(&open) {
                depth += 1;
                deepest = deepest.max(depth);
            }
            rest = &rest[1..];
        }
        deepest
    }

    #[test]
    fn rendered_html_is_sanitised() {
        let html = render_html("---\ntitle: x\n---\n# 标题\n\n<script>alert(1)</script>\n\n[链接](javascript:alert(1)) **粗体**\n");
        assert!(html.contains("<h1>标题</h1>"));
        assert!(html.contains("<strong>粗体</strong>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("title: x"));
    }

    #[test]
    fn quotes_nested_past_the_limit_keep_their_text_without_their_tags() {
        let markdown = format!("{} 最深处的话\n", ">".repeat(100));
        let html = render_html(&markdown);
        assert_eq!(depth_of(&html, "blockquote"), MAX_RENDERED_DEPTH);
        assert!(html.contains("最深处的话"));
    }

    #[test]
    fn raw_html_nested_past_the_limit_is_cut_and_ordinary_html_is_kept() {
        let nested = format!("{}深{}\n", "<div>".repeat(100), "</div>".repeat(100));
        let html = render_html(&nested);
        assert_eq!(depth_of(&html, "div"), MAX_RENDERED_DEPTH);
        assert!(html.contains('深'));

        let table = "<table><tr><td>一</td><td>二<br>三</td></tr></table>\n\n正文\n";
        let html = render_html(table);
        assert!(html.contains("<td>二<br>三</td>"), "{html}");
    }

    #[test]
    fn a_removed_tag_never_joins_its_neighbours_into_a_new_tag() {
        // Past the limit `<<div>div>` must not become `<div>`.
        let hostile = format!("{}{}\n", "<div>".repeat(40), "<<div>div>".repeat(50));
        let html = render_html(&hostile);
        assert_eq!(depth_of(&html, "div"), MAX_RENDERED_DEPTH);
    }

    #[test]
    fn closing_tags_hidden_in_comments_cannot_hide_more_than_the_tag_budget() {
        // The scanner believes the `</div>` in the comment; the parser does not. The budget holds.
        let hostile = "<div><!--</div>-->".repeat(10_000) + "\n";
        let html = render_html(&hostile);
        assert!(depth_of(&html, "div") <= MAX_RAW_HTML_TAGS);
        assert_eq!(html.matches("<div>").count(), MAX_RAW_HTML_TAGS);
    }
}
