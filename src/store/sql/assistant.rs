//! The assistant's conversations and messages (see `crate::store::assistant`),
//! the same statements on every engine; each engine's migrations make the
//! two tables.

use super::{Cols, Engine, Statements};
use crate::store::assistant::{AssistantTx, ConversationRow, MessageRow};
use crate::store::{SqlValue, StoreResult};

const CONVERSATION_COLS: &str = "id, user_id, org_id, title, tools, created_at, updated_at";
const MESSAGE_COLS: &str =
    "conversation_id, idx, role, body, sha256, audit_seq, created_at, response";

fn conversation_from(r: &mut Cols) -> StoreResult<ConversationRow> {
    Ok(ConversationRow {
        id: r.text()?,
        user_id: r.text()?,
        org_id: r.text()?,
        title: r.opt_text(),
        tools: r.text()?,
        created_at: r.text()?,
        updated_at: r.text()?,
    })
}

fn message_from(r: &mut Cols) -> StoreResult<MessageRow> {
    Ok(MessageRow {
        conversation_id: r.text()?,
        idx: r.int()?,
        role: r.text()?,
        body: r.text()?,
        sha256: r.text()?,
        audit_seq: r.int()?,
        created_at: r.text()?,
        response: match r.next() {
            SqlValue::Null => None,
            SqlValue::Blob(b) => Some(b),
            SqlValue::Text(t) => Some(t.into_bytes()),
            other => {
                return Err(crate::store::StoreError::Backend(format!(
                    "expected the bytes of a model's answer, found {other:?}"
                )));
            }
        },
    })
}

impl<E: Engine> AssistantTx for E {
    fn assistant_conversation_insert(&mut self, c: &ConversationRow) -> StoreResult<()> {
        self.exec(
            &format!(
                "INSERT INTO objectos_assistant_conversations ({CONVERSATION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ),
            args![
                &c.id,
                &c.user_id,
                &c.org_id,
                c.title.as_deref(),
                &c.tools,
                &c.created_at,
                &c.updated_at
            ],
        )?;
        Ok(())
    }

    fn assistant_conversation_get(&mut self, id: &str) -> StoreResult<Option<ConversationRow>> {
        self.one(
            &format!(
                "SELECT {CONVERSATION_COLS} FROM objectos_assistant_conversations WHERE id = ?1"
            ),
            args![id],
            conversation_from,
        )
    }

    fn assistant_conversations_of(
        &mut self,
        user_id: &str,
        org_id: &str,
    ) -> StoreResult<Vec<ConversationRow>> {
        self.all(
            &format!(
                "SELECT {CONVERSATION_COLS} FROM objectos_assistant_conversations WHERE user_id = ?1 AND org_id = ?2 ORDER BY updated_at DESC, id DESC"
            ),
            args![user_id, org_id],
            conversation_from,
        )
    }

    fn assistant_conversations(&mut self) -> StoreResult<Vec<ConversationRow>> {
        self.all(
            &format!(
                "SELECT {CONVERSATION_COLS} FROM objectos_assistant_conversations ORDER BY created_at, id"
            ),
            &[],
            conversation_from,
        )
    }

    fn assistant_conversation_touch(&mut self, id: &str, at: &str) -> StoreResult<()> {
        self.exec(
            "UPDATE objectos_assistant_conversations SET updated_at = ?2 WHERE id = ?1",
            args![id, at],
        )?;
        Ok(())
    }

    fn assistant_message_insert(&mut self, m: &MessageRow) -> StoreResult<()> {
        self.exec(
            &format!(
                "INSERT INTO objectos_assistant_messages ({MESSAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            args![
                &m.conversation_id,
                m.idx,
                &m.role,
                &m.body,
                &m.sha256,
                m.audit_seq,
                &m.created_at,
                m.response.as_deref()
            ],
        )?;
        Ok(())
    }

    fn assistant_messages(&mut self, conversation_id: &str) -> StoreResult<Vec<MessageRow>> {
        self.all(
            &format!(
                "SELECT {MESSAGE_COLS} FROM objectos_assistant_messages WHERE conversation_id = ?1 ORDER BY idx"
            ),
            args![conversation_id],
            message_from,
        )
    }
}
