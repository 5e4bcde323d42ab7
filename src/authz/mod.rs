//! Permission sets, record access and field security (docs/security-model.md). Pure: it decides
//! from what it is given and never reads the database; callers load the inputs.

pub mod access;

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::model::{Model, ObjectRights, PermissionSetDef, SYSTEM_PERMISSIONS};
use crate::store::{AssignmentRow, Tx, UserRow};
use crate::timefmt;

/// The system permissions an agent never exercises, whoever its user is.
pub const ADMINISTRATIVE_PERMISSIONS: &[&str] = &[
    "manage_users",
    "manage_permissions",
    "manage_settings",
    "view_audit",
    "export_audit",
    "approve_actions",
];

/// The built-in administrator set that `bootstrap` assigns.
pub const ADMIN_SET: &str = "admin";

/// Every system permission but `agent_access` (a model is never an administrator),
/// and no rights on business objects.
pub fn builtin_admin() -> PermissionSetDef {
    PermissionSetDef {
        name: ADMIN_SET.into(),
        label: "Administrator".into(),
        description: Some(
            "Manages people, permissions, settings and evidence; reads business data only through sets assigned like anyone's"
                .into(),
        ),
        is_default: false,
        objects: Default::default(),
        fields: Default::default(),
        system_permissions: SYSTEM_PERMISSIONS.iter().filter(|p| **p != "agent_access").map(|p| p.to_string()).collect(),
    }
}

/// Whether an assignment is in force for a credential of `org_id` at `now`.
pub fn assignment_active(a: &AssignmentRow, org_id: &str, now: &OffsetDateTime) -> bool {
    let org_ok = a.org_id.as_deref().is_none_or(|o| o == org_id);
    // An unreadable `valid_until` fails closed: the assignment is not in force.
    let time_ok = match a.valid_until.as_deref() {
        None => true,
        Some(text) => timefmt::parse_rfc3339(text).is_some_and(|until| until > *now),
    };
    org_ok && time_ok
}

/// A user's effective rights inside one organization: the union of their sets.
#[derive(Debug, Clone)]
pub struct Principal {
    /// When an assignment in force ends: the rights are not the same after it.
    pub changes_at: Option<OffsetDateTime>,
    pub user_id: String,
    pub email: String,
    pub org_id: String,
    pub disabled: bool,
    /// Names of the sets in force (default sets included).
    pub sets: Vec<String>,
    pub system: BTreeSet<String>,
    /// Team names (positions are teams).
    pub teams: BTreeSet<String>,
}

impl Principal {
    /// Load from the database what `authz` decides on.
    pub fn load(
        tx: &mut dyn Tx,
        model: Option<&Model>,
        user: &UserRow,
        org_id: &str,
        now: &OffsetDateTime,
    ) -> anyhow::Result<Principal> {
        let assignments = tx.assignments_of_user(&user.id)?;
        let teams = tx
            .teams_of_user(&user.id)?
            .into_iter()
            .map(|t| t.name)
            .collect();
        Ok(Principal::new(
            model,
            user,
            org_id,
            &assignments,
            teams,
            now,
        ))
    }

    pub fn new(
        model: Option<&Model>,
        user: &UserRow,
        org_id: &str,
        assignments: &[AssignmentRow],
        teams: BTreeSet<String>,
        now: &OffsetDateTime,
    ) -> Principal {
        let mut sets: Vec<String> = Vec::new();
        for a in assignments
            .iter()
            .filter(|a| assignment_active(a, org_id, now))
        {
            let exists = a.permset == ADMIN_SET
                || model.is_some_and(|m| m.permission_set(&a.permset).is_some());
            if exists && !sets.contains(&a.permset) {
                sets.push(a.permset.clone());
            }
        }
        if let Some(model) = model {
            for set in model.permission_sets.iter().filter(|s| s.is_default) {
                if !sets.contains(&set.name) {
                    sets.push(set.name.clone());
                }
            }
        }
        let admin = builtin_admin();
        let mut system = BTreeSet::new();
        for name in &sets {
            let def = if name == ADMIN_SET {
                Some(&admin)
            } else {
                model.and_then(|m| m.permission_set(name))
            };
            if let Some(def) = def {
                system.extend(def.system_permissions.iter().cloned());
            }
        }
        let changes_at = assignments
            .iter()
            .filter(|a| assignment_active(a, org_id, now))
            .filter_map(|a| a.valid_until.as_deref().and_then(timefmt::parse_rfc3339))
            .min();
        Principal {
            changes_at,
            user_id: user.id.clone(),
            email: user.email.clone(),
            org_id: org_id.to_string(),
            disabled: user.disabled,
            sets,
            system,
            teams,
        }
    }

    /// The same rights as an agent exercises them: never an administrative
    /// system permission, even one the user holds (a model is never an
    /// administrator; it can only propose).
    pub fn as_agent(mut self) -> Principal {
        self.system
            .retain(|p| !ADMINISTRATIVE_PERMISSIONS.contains(&p.as_str()));
        self
    }

    pub fn has(&self, permission: &str) -> bool {
        !self.disabled && self.system.contains(permission)
    }

    /// The union of object rights over the sets in force, implications applied.
    pub fn object_rights(&self, model: &Model, object: &str) -> ObjectRights {
        let mut out = ObjectRights::default();
        for name in &self.sets {
            if let Some(r) = model
                .permission_set(name)
                .and_then(|s| s.objects.get(object))
            {
                let r = r.implied();
                out.read |= r.read;
                out.create |= r.create;
                out.edit |= r.edit;
                out.delete |= r.delete;
                out.view_all |= r.view_all;
                out.modify_all |= r.modify_all;
                out.export |= r.export;
                out.read_org |= r.read_org;
                out.write_org |= r.write_org;
            }
        }
        out
    }
}
