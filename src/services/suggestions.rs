//! Pushing suggested replies (辅助回复) to the serving agent after each new visitor message.
//!
//! The pump subscribes to the desk's new visitor messages and computes from what the desk hands it
//! (the conversation as stored and the messages just before), so it reads neither the conversation
//! nor its history again, and a resend, which the desk does not announce, costs nothing.
//!
//! The work runs on a fixed number of threads fed by a bounded queue, so a busy afternoon cannot
//! grow threads or memory without end, and it never delays the visitor's acknowledgement or the
//! delivery of a message. Messages are coalesced per conversation: a visitor who sends three messages
//! before the first suggestion is computed gets one computation, for the newest. A conversation that
//! its agent no longer serves by the time its turn comes is skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Weak};

use parking_lot::Mutex;

use crate::domain::{Account, ConversationState, ReplyScope};
use crate::error::Result;
use crate::services::conversations::{
    DeskEvent, DeskFact, VisitorMessageStored, VisitorMessageSubscriber,
};
use crate::services::{AccountService, AssistService, ConversationService};

/// Which quick-reply scopes an agent may read (decided by the access rules of the HTTP layer).
pub type ScopesOf = fn(&Account) -> Vec<ReplyScope>;

/// Counters of the pump, for metrics and tests.
#[derive(Debug, Default)]
pub struct PumpCounts {
    /// Suggestions computed and pushed (possibly empty).
    pub computed: AtomicU64,
    /// Messages folded into one already waiting for the same conversation.
    pub coalesced: AtomicU64,
    /// Messages refused because the queue was full.
    pub dropped: AtomicU64,
    /// Messages skipped because the conversation had no serving agent, or no longer has that one.
    pub skipped: AtomicU64,
}

/// The newest message waiting per conversation; the queue carries conversation ids only.
type Pending = Arc<Mutex<HashMap<String, VisitorMessageStored>>>;

/// Queue and workers computing suggestions.
#[derive(Debug)]
pub struct SuggestionPump {
    /// Off (`conversations.push_suggestions = false`): messages are ignored.
    enabled: bool,
    pending: Pending,
    queue: mpsc::SyncSender<String>,
    counts: Arc<PumpCounts>,
}

struct Worker {
    conversations: Weak<ConversationService>,
    accounts: Weak<AccountService>,
    assist: Weak<AssistService>,
    scopes_of: ScopesOf,
    pending: Pending,
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
    /// services weakly and end when the pump is dropped. The caller subscribes the pump to the desk's
    /// visitor messages.
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
        let pending: Pending = Arc::default();
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

    /// The pump's counters.
    pub fn counts(&self) -> &PumpCounts {
        &self.counts
    }
}

impl VisitorMessageSubscriber for SuggestionPump {
    /// Queues suggestions answering `stored`. Returns at once.
    fn visitor_message_stored(&self, stored: &VisitorMessageStored) {
        if !self.enabled {
            return;
        }
        let conversation = &stored.conversation.id;
        let mut pending = self.pending.lock();
        if let Some(waiting) = pending.get_mut(conversation) {
            // Messages may be announced out of order by concurrent senders: the newest wins.
            if stored.message.seq > waiting.message.seq {
                *waiting = stored.clone();
            }
            self.counts.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.queue.try_send(conversation.clone()) {
            Ok(()) => {
                pending.insert(conversation.clone(), stored.clone());
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
}

impl Worker {
    /// Computes and pushes one conversation's suggestions; `false` once the services are gone.
    fn run(&self, conversation: &str) -> bool {
        let Some(stored) = self.pending.lock().remove(conversation) else {
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
            self.push(&conversations, &accounts, &assist, &stored)
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
        stored: &VisitorMessageStored,
    ) -> Result<()> {
        let conversation = &stored.conversation;
        let Some(agent_id) = serving_agent(stored) else {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        // The queue may have waited: an agent who ended or handed over the conversation since has no
        // use for them (the desk answers this from memory).
        if !conversations.is_served_by(&conversation.id, agent_id) {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let agent = accounts.account(agent_id)?;
        let scopes = (self.scopes_of)(&agent);
        let newest_first = std::iter::once(&stored.message).chain(stored.earlier.iter().rev());
        let suggestions = assist.for_messages(
            newest_first,
            agent_id,
            &agent.display_name,
            conversation.visitor_name(),
            &scopes,
        )?;
        assist.record_shown(&suggestions)?;
        if !suggestions.is_empty() {
            conversations.note(&[DeskFact::SuggestionsShown {
                agent: agent_id,
                group: conversation.group,
            }]);
        }
        conversations.hub().to_agents(
            &[agent_id],
            &DeskEvent::Suggestions {
                conversation: conversation.id.clone(),
                seq: stored.message.seq,
                suggestions,
            },
        );
        self.counts.computed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The agent serving the conversation when the message was stored, if it was being served.
fn serving_agent(stored: &VisitorMessageStored) -> Option<crate::domain::AccountId> {
    let conversation = &stored.conversation;
    conversation
        .agent
        .filter(|_| conversation.state == ConversationState::Active)
}
