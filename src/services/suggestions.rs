//! Pushing suggested replies (辅助回复) to the serving agent after each visitor message.
//!
//! The work runs on a fixed number of threads fed by a bounded queue, so a busy afternoon cannot
//! grow threads or memory without end, and it never delays the visitor's acknowledgement or the
//! delivery of a message. Requests are coalesced per conversation: a visitor who sends three messages
//! before the first suggestion is computed gets one computation, for the newest. A conversation that
//! has ended (or lost its agent) by the time its turn comes is skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Weak};

use parking_lot::Mutex;

use crate::domain::{Account, ConversationState, ReplyScope};
use crate::error::Result;
use crate::services::conversations::{DeskEvent, DeskFact};
use crate::services::{AccountService, AssistService, ConversationService};

/// Which quick-reply scopes an agent may read (decided by the access rules of the HTTP layer).
pub type ScopesOf = fn(&Account) -> Vec<ReplyScope>;

/// Counters of the pump, for metrics and tests.
#[derive(Debug, Default)]
pub struct PumpCounts {
    /// Suggestions computed and pushed (possibly empty).
    pub computed: AtomicU64,
    /// Requests folded into one already waiting for the same conversation.
    pub coalesced: AtomicU64,
    /// Requests refused because the queue was full.
    pub dropped: AtomicU64,
    /// Requests skipped because the conversation ended or has no agent any more.
    pub skipped: AtomicU64,
}

/// Queue and workers computing suggestions.
#[derive(Debug)]
pub struct SuggestionPump {
    /// Off (`conversations.push_suggestions = false`): requests are ignored.
    enabled: bool,
    pending: Arc<Mutex<HashMap<String, u64>>>,
    queue: mpsc::SyncSender<String>,
    counts: Arc<PumpCounts>,
}

struct Worker {
    conversations: Weak<ConversationService>,
    accounts: Weak<AccountService>,
    assist: Weak<AssistService>,
    scopes_of: ScopesOf,
    pending: Arc<Mutex<HashMap<String, u64>>>,
    counts: Arc<PumpCounts>,
}

impl SuggestionPump {
    /// A pump that pushes nothing.
    pub fn disabled() -> SuggestionPump {
        let (queue, _) = mpsc::sync_channel(1);
        SuggestionPump {
            enabled: false,
            pending: Arc::default(),
            queue,
            counts: Arc::default(),
        }
    }

    /// Starts `workers` threads with room for `capacity` conversations waiting. The threads hold the
    /// services weakly and end when the pump is dropped.
    pub fn start(
        conversations: &Arc<ConversationService>,
        accounts: &Arc<AccountService>,
        assist: &Arc<AssistService>,
        scopes_of: ScopesOf,
        workers: usize,
        capacity: usize,
    ) -> SuggestionPump {
        let (queue, receiver) = mpsc::sync_channel::<String>(capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let counts = Arc::new(PumpCounts::default());
        for index in 0..workers.max(1) {
            let worker = Worker {
                conversations: Arc::downgrade(conversations),
                accounts: Arc::downgrade(accounts),
                assist: Arc::downgrade(assist),
                scopes_of,
                pending: Arc::clone(&pending),
                counts: Arc::clone(&counts),
            };
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("kefu-suggest-{index}"))
                .spawn(move || loop {
                    let next: std::result::Result<String, mpsc::RecvError> = receiver.lock().recv();
                    let Ok(conversation) = next else {
                        break;
                    };
                    if !worker.run(&conversation) {
                        break;
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a suggestion thread");
            }
        }
        SuggestionPump {
            enabled: true,
            pending,
            queue,
            counts,
        }
    }

    /// Asks for suggestions answering the visitor message `seq` of `conversation`. Returns at once.
    pub fn request(&self, conversation: &str, seq: u64) {
        if !self.enabled {
            return;
        }
        let mut pending = self.pending.lock();
        if let Some(waiting) = pending.get_mut(conversation) {
            *waiting = (*waiting).max(seq);
            self.counts.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.queue.try_send(conversation.to_string()) {
            Ok(()) => {
                pending.insert(conversation.to_string(), seq);
            }
            Err(_) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    conversation,
                    "suggestion queue full; this message gets none"
                );
            }
        }
    }

    /// The pump's counters.
    pub fn counts(&self) -> &PumpCounts {
        &self.counts
    }
}

impl Worker {
    /// Computes and pushes one conversation's suggestions; `false` once the services are gone.
    fn run(&self, conversation: &str) -> bool {
        let Some(seq) = self.pending.lock().remove(conversation) else {
            return true;
        };
        let (Some(conversations), Some(accounts), Some(assist)) = (
            self.conversations.upgrade(),
            self.accounts.upgrade(),
            self.assist.upgrade(),
        ) else {
            return false;
        };
        // A panic in one computation must not take the thread (and the pump) with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.push(&conversations, &accounts, &assist, conversation, seq)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, conversation, "suggestions failed"),
            Err(_) => tracing::error!(conversation, "suggestions panicked"),
        }
        true
    }

    fn push(
        &self,
        conversations: &ConversationService,
        accounts: &AccountService,
        assist: &AssistService,
        conversation_id: &str,
        seq: u64,
    ) -> Result<()> {
        let current = conversations.conversation(conversation_id)?;
        let Some(agent_id) = current
            .agent
            .filter(|_| current.state == ConversationState::Active)
        else {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let agent = accounts.account(agent_id)?;
        let scopes = (self.scopes_of)(&agent);
        let suggestions =
            assist.for_conversation(conversation_id, agent_id, &agent.display_name, &scopes)?;
        assist.record_shown(&suggestions)?;
        if !suggestions.is_empty() {
            conversations.note(&[DeskFact::SuggestionsShown {
                agent: agent_id,
                group: current.group,
            }]);
        }
        conversations.hub().to_agents(
            &[agent_id],
            &DeskEvent::Suggestions {
                conversation: conversation_id.to_string(),
                seq,
                suggestions,
            },
        );
        self.counts.computed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
