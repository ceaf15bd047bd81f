//! Rendered article HTML by content hash, so reading an article does not render it again.
//!
//! Bounded by entries and by bytes; when full, the oldest entry goes first. An edit changes the
//! content hash, so a stale entry is never served: it just ages out.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Most articles kept rendered.
const MAX_ENTRIES: usize = 512;
/// Most bytes of HTML kept; a single page larger than a quarter of this is rendered each time.
const MAX_BYTES: usize = 32 << 20;

/// The cache; see the module docs.
#[derive(Debug, Default)]
pub struct RenderedHtml {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    html_of_hash: HashMap<String, Arc<str>>,
    /// Hashes, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

impl RenderedHtml {
    /// The HTML of the content with `content_hash`: the cached one, or `render()`'s, then kept.
    /// Rendering runs outside the lock, so one slow article does not hold up the others.
    pub fn get_or_render(&self, content_hash: &str, render: impl FnOnce() -> String) -> Arc<str> {
        if let Some(html) = self.lock().html_of_hash.get(content_hash) {
            return Arc::clone(html);
        }
        let html: Arc<str> = Arc::from(render());
        if html.len() > MAX_BYTES / 4 {
            return html;
        }
        let mut state = self.lock();
        if state.html_of_hash.contains_key(content_hash) {
            // Rendered meanwhile by another reader: the same content gives the same HTML.
            return html;
        }
        while state.order.len() >= MAX_ENTRIES || state.bytes + html.len() > MAX_BYTES {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            if let Some(evicted) = state.html_of_hash.remove(&oldest) {
                state.bytes -= evicted.len();
            }
        }
        state.bytes += html.len();
        state.order.push_back(content_hash.to_string());
        state
            .html_of_hash
            .insert(content_hash.to_string(), Arc::clone(&html));
        html
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, CacheState> {
        // parking_lot locks do not poison: a cache left half updated by a panic is still a cache.
        self.state.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_hash_is_rendered_once_and_a_new_hash_again() {
        let cache = RenderedHtml::default();
        let mut renders = 0;
        let first = cache.get_or_render("a", || {
            renders += 1;
            "<p>一</p>".to_string()
        });
        let again = cache.get_or_render("a", || {
            renders += 1;
            "<p>never</p>".to_string()
        });
        assert_eq!(renders, 1);
        assert!(Arc::ptr_eq(&first, &again));
        let edited = cache.get_or_render("b", || "<p>二</p>".to_string());
        assert_eq!(&*edited, "<p>二</p>");
    }

    #[test]
    fn the_cache_stays_within_its_entry_and_byte_bounds() {
        let cache = RenderedHtml::default();
        for n in 0..MAX_ENTRIES + 10 {
            cache.get_or_render(&n.to_string(), || "x".repeat(10));
        }
        let state = cache.lock();
        assert_eq!(state.html_of_hash.len(), MAX_ENTRIES);
        assert!(!state.html_of_hash.contains_key("0"));
        drop(state);

        let large = "y".repeat(MAX_BYTES / 4);
        for n in 0..8 {
            cache.get_or_render(&format!("large{n}"), || large.clone());
        }
        assert!(cache.lock().bytes <= MAX_BYTES);
    }
}
