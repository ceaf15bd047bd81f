//! Visitors behind [`VisitorRepository`]: profiles, page trails, the block list, the index of each
//! visitor's (and verified person's) conversations, and visitor tokens. [`StoredVisitors`] keeps
//! them in the store's tables.
//!
//! Keys, unchanged since these were first stored:
//! - `visitors`: visitor id → `VisitorProfile`;
//! - `page_views`: visitor id, 0x00, sequence (big-endian) → `PageView`, so one visitor's trail is
//!   one ordered range, oldest first;
//! - `blocks`: block id (big-endian) → `Block`;
//! - `visitor_conversations`: `v:<visitor id>` or `p:<site>:<user id>`, 0x00, conversation id →
//!   nothing;
//! - `visitor_tokens`: BLAKE3 hash of the token → `VisitorGrant`, so a copy of the database holds
//!   no usable token.

use crate::domain::{Block, PageView, VisitorGrant, VisitorProfile};
use crate::error::Result;
use crate::storage::{self, id_key, Store};

/// Whose conversations an index entry files: one visitor (one device), or a person the host site
/// verified, across their devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationOwner<'a> {
    /// A visitor id.
    Visitor(&'a str),
    /// A verified identity's person key (`<site>:<user id>`).
    Person(&'a str),
}

impl ConversationOwner<'_> {
    fn prefix(&self) -> Vec<u8> {
        let label = match self {
            ConversationOwner::Visitor(id) => format!("v:{id}"),
            ConversationOwner::Person(key) => format!("p:{key}"),
        };
        [label.as_bytes(), &[0]].concat()
    }
}

/// Where visitors' profiles, trails, blocks and conversation index live.
pub trait VisitorRepository: Send + Sync + std::fmt::Debug {
    /// A visitor's profile.
    fn profile(&self, visitor: &str) -> Result<Option<VisitorProfile>>;
    /// Whether a profile is stored, without reading it.
    fn is_known(&self, visitor: &str) -> Result<bool>;
    /// Writes a profile (insert or replace), under its `id`.
    fn put_profile(&self, profile: &VisitorProfile) -> Result<()>;
    /// Appends a page view to the visitor's trail and drops its oldest views beyond `keep_newest`.
    fn append_page_view(&self, visitor: &str, view: &PageView, keep_newest: usize) -> Result<()>;
    /// The visitor's trail, oldest first.
    fn page_views(&self, visitor: &str) -> Result<Vec<PageView>>;
    /// A fresh block id.
    fn new_block_id(&self) -> Result<u64>;
    /// Every block, oldest first (expired ones included).
    fn blocks(&self) -> Result<Vec<Block>>;
    /// One block.
    fn block(&self, id: u64) -> Result<Option<Block>>;
    /// Writes a block (insert or replace).
    fn put_block(&self, block: &Block) -> Result<()>;
    /// Removes a block.
    fn remove_block(&self, id: u64) -> Result<()>;
    /// Files `conversation` under `owner` (idempotent).
    fn file_conversation(&self, owner: ConversationOwner<'_>, conversation: &str) -> Result<()>;
    /// Ids of the conversations filed under `owner`, in key order.
    fn conversations_of(&self, owner: ConversationOwner<'_>) -> Result<Vec<String>>;
}

/// Where visitor tokens live, by the hash of the token.
pub trait VisitorTokenRepository: Send + Sync + std::fmt::Debug {
    /// Writes what `token` grants (insert or replace).
    fn put_grant(&self, token: &str, grant: &VisitorGrant) -> Result<()>;
    /// What `token` grants, expired or not.
    fn grant(&self, token: &str) -> Result<Option<VisitorGrant>>;
    /// Removes every token whose grant `expired` says so; returns how many.
    fn remove_grants_where(&self, expired: &dyn Fn(&VisitorGrant) -> bool) -> Result<usize>;
}

/// [`VisitorRepository`] and [`VisitorTokenRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredVisitors {
    store: Store,
}

impl StoredVisitors {
    /// Visitors in `store`.
    pub fn new(store: &Store) -> StoredVisitors {
        StoredVisitors {
            store: store.clone(),
        }
    }
}

fn trail_prefix(visitor: &str) -> Vec<u8> {
    [visitor.as_bytes(), &[0]].concat()
}

/// Storage key of a token: its BLAKE3 hash.
fn token_key(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl VisitorRepository for StoredVisitors {
    fn profile(&self, visitor: &str) -> Result<Option<VisitorProfile>> {
        storage::get_json(&self.store.visitors, visitor)
    }

    fn is_known(&self, visitor: &str) -> Result<bool> {
        self.store.visitors.contains_key(visitor)
    }

    fn put_profile(&self, profile: &VisitorProfile) -> Result<()> {
        storage::put_json(&self.store.visitors, &profile.id, profile)
    }

    fn append_page_view(&self, visitor: &str, view: &PageView, keep_newest: usize) -> Result<()> {
        let sequence = self.store.next_id()?;
        let key = [&trail_prefix(visitor)[..], &id_key(sequence)].concat();
        storage::put_json(&self.store.page_views, key, view)?;
        let keys = self
            .store
            .page_views
            .scan_prefix_keys(trail_prefix(visitor))?;
        // Keys end in an increasing sequence: the oldest views come first.
        let excess = keys.len().saturating_sub(keep_newest);
        for key in keys.into_iter().take(excess) {
            self.store.page_views.remove(key)?;
        }
        Ok(())
    }

    fn page_views(&self, visitor: &str) -> Result<Vec<PageView>> {
        self.store
            .page_views
            .scan_prefix(trail_prefix(visitor))?
            .into_iter()
            .map(|(_, value)| storage::decode(&value))
            .collect()
    }

    fn new_block_id(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn blocks(&self) -> Result<Vec<Block>> {
        storage::scan_json(&self.store.blocks)
    }

    fn block(&self, id: u64) -> Result<Option<Block>> {
        storage::get_json(&self.store.blocks, id_key(id))
    }

    fn put_block(&self, block: &Block) -> Result<()> {
        storage::put_json(&self.store.blocks, id_key(block.id), block)
    }

    fn remove_block(&self, id: u64) -> Result<()> {
        self.store.blocks.remove(id_key(id))?;
        Ok(())
    }

    fn file_conversation(&self, owner: ConversationOwner<'_>, conversation: &str) -> Result<()> {
        let entry = [&owner.prefix()[..], conversation.as_bytes()].concat();
        self.store.visitor_conversations.insert(entry, [])
    }

    fn conversations_of(&self, owner: ConversationOwner<'_>) -> Result<Vec<String>> {
        let prefix = owner.prefix();
        Ok(self
            .store
            .visitor_conversations
            .scan_prefix_keys(&prefix)?
            .into_iter()
            .map(|entry| String::from_utf8_lossy(&entry[prefix.len()..]).into_owned())
            .collect())
    }
}

impl VisitorTokenRepository for StoredVisitors {
    fn put_grant(&self, token: &str, grant: &VisitorGrant) -> Result<()> {
        storage::put_json(&self.store.visitor_tokens, token_key(token), grant)
    }

    fn grant(&self, token: &str) -> Result<Option<VisitorGrant>> {
        storage::get_json(&self.store.visitor_tokens, token_key(token))
    }

    fn remove_grants_where(&self, expired: &dyn Fn(&VisitorGrant) -> bool) -> Result<usize> {
        let mut removed = 0;
        for (key, value) in self.store.visitor_tokens.iter()? {
            let grant: VisitorGrant = storage::decode(&value)?;
            if expired(&grant) {
                self.store.visitor_tokens.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn visitors() -> (tempfile::TempDir, StoredVisitors) {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        (folder, StoredVisitors::new(&store))
    }

    fn view(url: &str) -> PageView {
        PageView {
            url: url.into(),
            title: String::new(),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_trail_keeps_the_newest_views_of_its_visitor_only() {
        let (_folder, visitors) = visitors();
        for page in ["/a", "/b", "/c"] {
            visitors.append_page_view("v_1", &view(page), 2).unwrap();
        }
        // A visitor whose id extends another's keeps a trail of its own.
        visitors.append_page_view("v_10", &view("/x"), 2).unwrap();
        let urls: Vec<String> = visitors
            .page_views("v_1")
            .unwrap()
            .into_iter()
            .map(|view| view.url)
            .collect();
        assert_eq!(urls, ["/b", "/c"]);
        assert_eq!(visitors.page_views("v_10").unwrap().len(), 1);
    }

    #[test]
    fn conversations_are_filed_per_visitor_and_per_person() {
        let (_folder, visitors) = visitors();
        visitors
            .file_conversation(ConversationOwner::Visitor("v_1"), "c_2")
            .unwrap();
        visitors
            .file_conversation(ConversationOwner::Visitor("v_1"), "c_1")
            .unwrap();
        visitors
            .file_conversation(ConversationOwner::Visitor("v_1"), "c_1")
            .unwrap();
        visitors
            .file_conversation(ConversationOwner::Person("shop:42"), "c_3")
            .unwrap();
        assert_eq!(
            visitors
                .conversations_of(ConversationOwner::Visitor("v_1"))
                .unwrap(),
            ["c_1", "c_2"]
        );
        assert_eq!(
            visitors
                .conversations_of(ConversationOwner::Person("shop:42"))
                .unwrap(),
            ["c_3"]
        );
        assert!(visitors
            .conversations_of(ConversationOwner::Visitor("v_"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn tokens_are_found_by_token_and_purged_by_their_grant() {
        let (_folder, visitors) = visitors();
        let grant = |visitor: &str| VisitorGrant {
            visitor_id: visitor.into(),
            conversation: None,
            created: Timestamp::UNIX_EPOCH,
        };
        visitors.put_grant("secret-1", &grant("v_1")).unwrap();
        visitors.put_grant("secret-2", &grant("v_2")).unwrap();
        assert_eq!(
            visitors.grant("secret-1").unwrap().unwrap().visitor_id,
            "v_1"
        );
        assert!(visitors.grant("v_1").unwrap().is_none());
        let removed = visitors
            .remove_grants_where(&|grant| grant.visitor_id == "v_2")
            .unwrap();
        assert_eq!(removed, 1);
        assert!(visitors.grant("secret-2").unwrap().is_none());
        assert!(visitors.grant("secret-1").unwrap().is_some());
    }
}
