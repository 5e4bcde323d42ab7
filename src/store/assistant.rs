//! What the store keeps of the assistant's conversations (docs/assistant.md): one row
//! per conversation and one per message, each message as the exact JSON text
//! sent to (or received from) the model, with its SHA-256 and the seq of the
//! audit row that recorded that hash. Kept apart from [`super::Tx`] so that a
//! backend implements it in a file of its own.

use super::StoreResult;

/// A conversation: whose it is, in which organization, and the tool
/// definitions its model requests carried (the exact JSON text sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub title: Option<String>,
    pub tools: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One message of a conversation, in order (`idx` from 0, the instructions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub conversation_id: String,
    pub idx: i64,
    /// `system`, `user`, `assistant` or `tool`
    pub role: String,
    /// The message as the model's API has it, exactly as sent (JSON text).
    pub body: String,
    /// SHA-256 of `body`, hex.
    pub sha256: String,
    /// The `assistant.message` audit row that recorded `sha256`.
    pub audit_seq: i64,
    pub created_at: String,
    /// For a model's answer: the exact bytes the endpoint sent (JSON or the
    /// event stream), whose SHA-256 the request's audit row recorded.
    pub response: Option<Vec<u8>>,
}

/// The assistant's tables, for one transaction.
pub trait AssistantTx {
    fn assistant_conversation_insert(&mut self, row: &ConversationRow) -> StoreResult<()>;
    fn assistant_conversation_get(&mut self, id: &str) -> StoreResult<Option<ConversationRow>>;
    /// One user's conversations in one organization, newest first.
    fn assistant_conversations_of(
        &mut self,
        user_id: &str,
        org_id: &str,
    ) -> StoreResult<Vec<ConversationRow>>;
    /// Every conversation, oldest first (the operator's export and checks).
    fn assistant_conversations(&mut self) -> StoreResult<Vec<ConversationRow>>;
    fn assistant_conversation_touch(&mut self, id: &str, at: &str) -> StoreResult<()>;
    /// Append a message; a second message at the same index is refused
    /// (`StoreError::Unique`), so two turns never interleave.
    fn assistant_message_insert(&mut self, row: &MessageRow) -> StoreResult<()>;
    /// A conversation's messages in order.
    fn assistant_messages(&mut self, conversation_id: &str) -> StoreResult<Vec<MessageRow>>;
}
