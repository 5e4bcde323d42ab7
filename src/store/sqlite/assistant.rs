//! The SQLite tables of the assistant's conversations (migration 7; see
//! `crate::store::assistant`; the statements are `crate::store::sql`'s).

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
