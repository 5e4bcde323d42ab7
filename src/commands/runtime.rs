//! Shared by the runtime administration commands: opening the data dir and the
//! applied model, and the shapes their `--json` documents print.

use schemars::JsonSchema;
use serde::Serialize;

use std::path::{Path, PathBuf};

use crate::commands::Ctx;
use crate::error::Failure;
use crate::instance::{CHECKPOINTS, Instance};
use crate::model::Model;
use crate::store::{ApiKeyRow, OrgRow, SessionRow, UserRow};

impl Ctx {
    /// The data dir for a command that writes (an audit row at least). Where it
    /// cannot be written it is refused as read-only before anything is tried:
    /// SQLite would open a read-only file of a copied live data dir (with its
    /// `-wal` and `-shm`) for reading, and the command would fail later, on the
    /// checkpoint log or a row, with a bare "permission denied".
    pub fn instance(&self) -> anyhow::Result<Instance> {
        if let Some(why) = cannot_write(&self.data_dir) {
            // What else is wrong (no data dir, another user's) is said first.
            drop(Instance::open_read_only(&self.data_dir)?);
            let whose = if why == nix::errno::Errno::EROFS {
                String::new()
            } else {
                format!(" to OS user `{}`", crate::audit::os_user())
            };
            return Err(Failure::error(format!(
                "the data dir `{}` is read-only{whose}, and this command writes (an audit row at least)",
                self.data_dir.display()
            ))
            .with_hint("run it where the data dir is writable; `audit verify`, `audit tail`, `doctor`, `user list`, `trust list` and `permset show` work on read-only media")
            .into());
        }
        Instance::open(&self.data_dir)
    }

    /// The data dir for a command that writes nothing when `reads_only`: opened
    /// as usual where it can be written (so a missing audit guard is put back),
    /// and read-only where it cannot (read-only media, an auditor's copy), so
    /// that nothing, not even a checkpoint, is tried there.
    pub fn instance_reading(&self, reads_only: bool) -> anyhow::Result<Instance> {
        if !reads_only {
            return self.instance();
        }
        if cannot_write(&self.data_dir).is_some() {
            return Instance::open_read_only(&self.data_dir);
        }
        Instance::open(&self.data_dir)
    }
}

/// Why this OS user cannot write the data dir, or one of the files a command
/// that writes changes in it (`EROFS`: read-only media; else a copy made
/// read-only, another user's files), if it cannot. A data dir that is not
/// there is left to the opening to report.
fn cannot_write(dir: &Path) -> Option<nix::errno::Errno> {
    use nix::unistd::{AccessFlags, access};
    if !dir.exists() {
        return None;
    }
    let db = Instance::db_path(dir);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let mut shm = db.clone().into_os_string();
    shm.push("-shm");
    let files = [
        db,
        PathBuf::from(wal),
        PathBuf::from(shm),
        dir.join(CHECKPOINTS),
    ];
    std::iter::once(dir)
        .chain(files.iter().map(PathBuf::as_path).filter(|f| f.exists()))
        .find_map(|f| access(f, AccessFlags::W_OK).err())
}

/// The applied artifact's model for enforcement (verified), if one is applied.
pub fn current_model(instance: &Instance) -> anyhow::Result<Option<Model>> {
    Ok(
        crate::instance::applied::load(instance, crate::instance::applied::Purpose::Enforce)?
            .map(|a| a.model),
    )
}

/// The applied artifact's model for enforcement, or a refusal naming the fix.
pub fn required_model(instance: &Instance) -> anyhow::Result<Model> {
    Ok(crate::instance::applied::require(instance)?.model)
}

#[derive(Serialize, JsonSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub disabled: bool,
    pub has_password: bool,
    pub created_at: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            disabled: u.disabled,
            has_password: u.password_hash.is_some(),
            created_at: u.created_at.clone(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<&OrgRow> for OrgView {
    fn from(o: &OrgRow) -> Self {
        OrgView {
            id: o.id.clone(),
            name: o.name.clone(),
            created_at: o.created_at.clone(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct KeyView {
    pub id: String,
    pub user: String,
    pub organization: String,
    pub kind: String,
    pub read_only: bool,
    pub name: Option<String>,
    /// The first characters of the key, for recognising it
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl KeyView {
    pub fn new(k: &ApiKeyRow, user: &str, org: &str) -> KeyView {
        KeyView {
            id: k.id.clone(),
            user: user.to_string(),
            organization: org.to_string(),
            kind: k.kind.as_str().into(),
            read_only: k.read_only,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at.clone(),
            expires_at: k.expires_at.clone(),
            revoked_at: k.revoked_at.clone(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct SessionView {
    pub id: String,
    pub user: String,
    pub organization: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

impl SessionView {
    pub fn new(s: &SessionRow, user: &str, org: &str) -> SessionView {
        SessionView {
            id: s.id.clone(),
            user: user.to_string(),
            organization: org.to_string(),
            created_at: s.created_at.clone(),
            expires_at: s.expires_at.clone(),
            revoked_at: s.revoked_at.clone(),
        }
    }
}

/// Print rows as an aligned table (stdout).
pub fn table(ctx: &Ctx, header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cells.len() {
                    c.clone()
                } else {
                    format!("{c:w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    ctx.out
        .data(line(header.iter().map(|h| h.to_uppercase()).collect()))?;
    for row in rows {
        ctx.out.data(line(row))?;
    }
    Ok(())
}
