//! The SQLite side of the assistant's conversations (migration 7; see
//! `crate::store::assistant`).

use rusqlite::params;

use super::SqliteTx;
use crate::store::StoreResult;
use crate::store::assistant::{AssistantTx, ConversationRow, MessageRow};

/// Migration 7: conversations and their messages.
pub const MIGRATION: &str = r#"
    CREATE TABLE objectos_assistant_conversations (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        org_id TEXT NOT NULL,
        title TEXT,
        tools TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX objectos_assistant_conversations_user ON objectos_assistant_conversations(user_id, org_id, updated_at);
    CREATE TABLE objectos_assistant_messages (
        conversation_id TEXT NOT NULL REFERENCES objectos_assistant_conversations(id),
        idx INTEGER NOT NULL,
        role TEXT NOT NULL,
        body TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        audit_seq INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        response BLOB,
        PRIMARY KEY (conversation_id, idx)
    );
"#;

const CONVERSATION_COLS: &str = "id, user_id, org_id, title, tools, created_at, updated_at";

fn conversation_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        org_id: r.get(2)?,
        title: r.get(3)?,
        tools: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

fn message_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        conversation_id: r.get(0)?,
        idx: r.get(1)?,
        role: r.get(2)?,
        body: r.get(3)?,
        sha256: r.get(4)?,
        audit_seq: r.get(5)?,
        created_at: r.get(6)?,
        response: r.get(7)?,
    })
}

impl AssistantTx for SqliteTx<'_> {
    fn assistant_conversation_insert(&mut self, c: &ConversationRow) -> StoreResult<()> {
        self.exec(
            &format!(
                "INSERT INTO objectos_assistant_conversations ({CONVERSATION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ),
            params![
                c.id,
                c.user_id,
                c.org_id,
                c.title,
                c.tools,
                c.created_at,
                c.updated_at
            ],
        )?;
        Ok(())
    }

    fn assistant_conversation_get(&mut self, id: &str) -> StoreResult<Option<ConversationRow>> {
        self.one(
            &format!(
                "SELECT {CONVERSATION_COLS} FROM objectos_assistant_conversations WHERE id = ?1"
            ),
            [id],
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
            [user_id, org_id],
            conversation_from,
        )
    }

    fn assistant_conversations(&mut self) -> StoreResult<Vec<ConversationRow>> {
        self.all(
            &format!(
                "SELECT {CONVERSATION_COLS} FROM objectos_assistant_conversations ORDER BY created_at, id"
            ),
            [],
            conversation_from,
        )
    }

    fn assistant_conversation_touch(&mut self, id: &str, at: &str) -> StoreResult<()> {
        self.exec(
            "UPDATE objectos_assistant_conversations SET updated_at = ?2 WHERE id = ?1",
            [id, at],
        )?;
        Ok(())
    }

    fn assistant_message_insert(&mut self, m: &MessageRow) -> StoreResult<()> {
        self.exec(
            "INSERT INTO objectos_assistant_messages (conversation_id, idx, role, body, sha256, audit_seq, created_at, response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                m.conversation_id,
                m.idx,
                m.role,
                m.body,
                m.sha256,
                m.audit_seq,
                m.created_at,
                m.response
            ],
        )?;
        Ok(())
    }

    fn assistant_messages(&mut self, conversation_id: &str) -> StoreResult<Vec<MessageRow>> {
        self.all(
            "SELECT conversation_id, idx, role, body, sha256, audit_seq, created_at, response FROM objectos_assistant_messages WHERE conversation_id = ?1 ORDER BY idx",
            [conversation_id],
            message_from,
        )
    }
}
