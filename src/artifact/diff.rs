//! Differences between two artifacts, each flagged when it widens access or breaks
//! existing data and clients.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::*;

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Change {
    /// `manifest`, `object`, `field`, `permission_set`, `object_rights`,
    /// `field_rights`, `system_permission`, `sharing_rule`, `action`, `policy`
    pub kind: &'static str,
    /// `added`, `removed` or `changed`
    pub change: &'static str,
    /// What changed, as `object.field`, `set:object`, and so on
    pub subject: String,
    pub detail: String,
    /// Someone may read or do more than before
    pub widens: bool,
    /// Existing data or clients may stop working
    pub breaking: bool,
}

struct Diff {
    changes: Vec<Change>,
}

impl Diff {
    fn push(
        &mut self,
        kind: &'static str,
        change: &'static str,
        subject: String,
        detail: String,
        widens: bool,
        breaking: bool,
    ) {
        self.changes.push(Change {
            kind,
            change,
            subject,
            detail,
            widens,
            breaking,
        });
    }
}

pub fn diff(old: &Model, new: &Model) -> Vec<Change> {
    let mut d = Diff {
        changes: Vec::new(),
    };
    if old.manifest.id != new.manifest.id {
        d.push(
            "manifest",
            "changed",
            "id".into(),
            format!("{} → {}", old.manifest.id, new.manifest.id),
            false,
            true,
        );
    }
    if old.manifest.version != new.manifest.version {
        let downgrade = new.manifest.version < old.manifest.version;
        d.push(
            "manifest",
            "changed",
            "version".into(),
            format!(
                "{} → {}{}",
                old.manifest.version,
                new.manifest.version,
                if downgrade { " (downgrade)" } else { "" }
            ),
            false,
            downgrade,
        );
    }
    objects(&mut d, old, new);
    permission_sets(&mut d, old, new);
    sharing_rules(&mut d, old, new);
    actions(&mut d, old, new);
    d.changes
}

fn objects(d: &mut Diff, old: &Model, new: &Model) {
    for o in &old.objects {
        if new.object(&o.name).is_none() {
            d.push(
                "object",
                "removed",
                o.name.clone(),
                format!("object `{}` and its data are dropped", o.name),
                false,
                true,
            );
        }
    }
    for n in &new.objects {
        let Some(o) = old.object(&n.name) else {
            d.push(
                "object",
                "added",
                n.name.clone(),
                format!(
                    "object `{}` with {} fields, sharing {}",
                    n.name,
                    n.fields.len(),
                    n.sharing_model.as_str()
                ),
                false,
                false,
            );
            continue;
        };
        if o.sharing_model != n.sharing_model {
            let widens = n.sharing_model.openness() > o.sharing_model.openness()
                || (o.sharing_model == SharingModel::Private
                    && n.sharing_model == SharingModel::ControlledByParent);
            d.push(
                "object",
                "changed",
                format!("{}.sharingModel", n.name),
                format!(
                    "{} → {}",
                    o.sharing_model.as_str(),
                    n.sharing_model.as_str()
                ),
                widens,
                !widens,
            );
        }
        if o.ownership != n.ownership {
            d.push(
                "object",
                "changed",
                format!("{}.ownership", n.name),
                format!("{} → {}", o.ownership.as_str(), n.ownership.as_str()),
                true,
                true,
            );
        }
        if o.required_permissions != n.required_permissions {
            let lost = o
                .required_permissions
                .read
                .iter()
                .any(|p| !n.required_permissions.read.contains(p))
                || o.required_permissions
                    .update
                    .iter()
                    .any(|p| !n.required_permissions.update.contains(p));
            d.push(
                "object",
                "changed",
                format!("{}.requiredPermissions", n.name),
                format!(
                    "{:?} → {:?}",
                    o.required_permissions.read, n.required_permissions.read
                ),
                lost,
                !lost,
            );
        }
        if o.read_only != n.read_only {
            d.push(
                "policy",
                "changed",
                format!("{}.readOnly", n.name),
                format!("{} → {}", o.read_only, n.read_only),
                o.read_only,
                n.read_only,
            );
        }
        if o.agent_writes != n.agent_writes {
            let rank = |a: AgentWrites| match a {
                AgentWrites::Deny => 0,
                AgentWrites::Approval => 1,
                AgentWrites::Direct => 2,
            };
            d.push(
                "policy",
                "changed",
                format!("{}.agentWrites", n.name),
                format!("{:?} → {:?}", o.agent_writes, n.agent_writes).to_lowercase(),
                rank(n.agent_writes) > rank(o.agent_writes),
                false,
            );
        }
        if o.audit_reads != n.audit_reads {
            d.push(
                "policy",
                "changed",
                format!("{}.auditReads", n.name),
                format!("{} → {}", o.audit_reads, n.audit_reads),
                false,
                false,
            );
        }
        for f in &o.fields {
            if n.field(&f.name).is_none() {
                d.push(
                    "field",
                    "removed",
                    format!("{}.{}", n.name, f.name),
                    "the field and its values are dropped".into(),
                    false,
                    true,
                );
            }
        }
        for nf in &n.fields {
            let subject = format!("{}.{}", n.name, nf.name);
            let Some(of) = o.field(&nf.name) else {
                d.push(
                    "field",
                    "added",
                    subject,
                    format!(
                        "{} field{}",
                        nf.field_type,
                        if nf.required { ", required" } else { "" }
                    ),
                    false,
                    nf.required && nf.default_value().is_none(),
                );
                continue;
            };
            if of.field_type != nf.field_type {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!("type {} → {}", of.field_type, nf.field_type),
                    false,
                    of.storage != nf.storage,
                );
            }
            if of.reference() != nf.reference() {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!("reference {:?} → {:?}", of.reference(), nf.reference()),
                    false,
                    true,
                );
            }
            if !of.required && nf.required {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "becomes required".into(),
                    false,
                    true,
                );
            }
            if of.unique == Unique::No && nf.unique != Unique::No {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "becomes unique".into(),
                    false,
                    true,
                );
            }
            if let (Some(a), Some(b)) = (of.max_length(), nf.max_length())
                && b < a
            {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!("maxLength {a} → {b}"),
                    false,
                    true,
                );
            }
            let removed_options: Vec<&String> = of
                .options()
                .iter()
                .filter(|v| !nf.options().contains(v))
                .collect();
            if !removed_options.is_empty() {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!(
                        "options removed: {}",
                        removed_options
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    false,
                    true,
                );
            }
            if of.sensitive && !nf.sensitive {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "no longer sensitive: readable wherever the object is".into(),
                    true,
                    false,
                );
            }
            if !of.sensitive && nf.sensitive {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "becomes sensitive: readable only by explicit grant".into(),
                    false,
                    true,
                );
            }
            if of.readonly && !nf.readonly {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "no longer read-only".into(),
                    true,
                    false,
                );
            }
            if of.internal && !nf.internal {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    "no longer internal: its values become readable".into(),
                    true,
                    false,
                );
            }
            let lost: Vec<&String> = of
                .required_permissions
                .iter()
                .filter(|p| !nf.required_permissions.contains(p))
                .collect();
            if !lost.is_empty() {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!(
                        "no longer needs {}",
                        lost.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    true,
                    false,
                );
            }
            let gained: Vec<&String> = nf
                .required_permissions
                .iter()
                .filter(|p| !of.required_permissions.contains(p))
                .collect();
            if !gained.is_empty() {
                d.push(
                    "field",
                    "changed",
                    subject.clone(),
                    format!(
                        "now needs {}",
                        gained
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    false,
                    true,
                );
            }
        }
    }
}

fn rights_list(r: ObjectRights) -> Vec<&'static str> {
    let r = r.implied();
    let mut v = Vec::new();
    for (on, name) in [
        (r.read, "read"),
        (r.create, "create"),
        (r.edit, "edit"),
        (r.delete, "delete"),
        (r.view_all, "viewAllRecords"),
        (r.modify_all, "modifyAllRecords"),
        (r.export, "export"),
        (r.read_org, "readScope:org"),
        (r.write_org, "writeScope:org"),
    ] {
        if on {
            v.push(name);
        }
    }
    v
}

fn permission_sets(d: &mut Diff, old: &Model, new: &Model) {
    for o in &old.permission_sets {
        if new.permission_set(&o.name).is_none() {
            d.push(
                "permission_set",
                "removed",
                o.name.clone(),
                "users assigned it lose its rights".into(),
                false,
                true,
            );
        }
    }
    for n in &new.permission_sets {
        let Some(o) = old.permission_set(&n.name) else {
            let grants = !n.objects.is_empty() || !n.system_permissions.is_empty();
            d.push(
                "permission_set",
                "added",
                n.name.clone(),
                format!(
                    "{} objects, system permissions: {}",
                    n.objects.len(),
                    n.system_permissions
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                grants && n.is_default,
                false,
            );
            continue;
        };
        if !o.is_default && n.is_default {
            d.push(
                "permission_set",
                "changed",
                n.name.clone(),
                "becomes a default set: applies to every user".into(),
                true,
                false,
            );
        }
        let objects: BTreeSet<&String> = o.objects.keys().chain(n.objects.keys()).collect();
        for object in objects {
            let before = o
                .objects
                .get(object)
                .map(|r| rights_list(*r))
                .unwrap_or_default();
            let after = n
                .objects
                .get(object)
                .map(|r| rights_list(*r))
                .unwrap_or_default();
            if before == after {
                continue;
            }
            let gained: Vec<&str> = after
                .iter()
                .filter(|r| !before.contains(r))
                .copied()
                .collect();
            let lost: Vec<&str> = before
                .iter()
                .filter(|r| !after.contains(r))
                .copied()
                .collect();
            let mut detail = Vec::new();
            if !gained.is_empty() {
                detail.push(format!("gains {}", gained.join(", ")));
            }
            if !lost.is_empty() {
                detail.push(format!("loses {}", lost.join(", ")));
            }
            let change = if before.is_empty() {
                "added"
            } else if after.is_empty() {
                "removed"
            } else {
                "changed"
            };
            d.push(
                "object_rights",
                change,
                format!("{}:{}", n.name, object),
                detail.join("; "),
                !gained.is_empty(),
                !lost.is_empty(),
            );
        }
        let keys: BTreeSet<&(String, String)> = o.fields.keys().chain(n.fields.keys()).collect();
        for key in keys {
            let (object, field) = key;
            // An unmentioned field follows the object's rights: readable and editable.
            let unmentioned = FieldRights {
                readable: true,
                editable: true,
            };
            let sensitive = new
                .object(object)
                .and_then(|ob| ob.field(field))
                .is_some_and(|f| f.sensitive);
            let default = if sensitive {
                FieldRights {
                    readable: false,
                    editable: false,
                }
            } else {
                unmentioned
            };
            let before = o.fields.get(key).copied().unwrap_or(default);
            let after = n.fields.get(key).copied().unwrap_or(default);
            if before == after {
                continue;
            }
            let widens =
                (!before.readable && after.readable) || (!before.editable && after.editable);
            let narrows =
                (before.readable && !after.readable) || (before.editable && !after.editable);
            d.push(
                "field_rights",
                "changed",
                format!("{}:{}.{}", n.name, object, field),
                format!(
                    "readable {} → {}, editable {} → {}",
                    before.readable, after.readable, before.editable, after.editable
                ),
                widens,
                narrows,
            );
        }
        for p in n.system_permissions.difference(&o.system_permissions) {
            d.push(
                "system_permission",
                "added",
                format!("{}:{p}", n.name),
                format!("`{}` grants `{p}`", n.name),
                true,
                false,
            );
        }
        for p in o.system_permissions.difference(&n.system_permissions) {
            d.push(
                "system_permission",
                "removed",
                format!("{}:{p}", n.name),
                format!("`{}` no longer grants `{p}`", n.name),
                false,
                true,
            );
        }
    }
}

fn sharing_rules(d: &mut Diff, old: &Model, new: &Model) {
    for o in &old.sharing_rules {
        if !new.sharing_rules.iter().any(|n| n.name == o.name) {
            d.push(
                "sharing_rule",
                "removed",
                o.name.clone(),
                format!(
                    "{} records no longer shared with {}",
                    o.object,
                    o.shared_with.describe()
                ),
                false,
                o.active,
            );
        }
    }
    for n in &new.sharing_rules {
        let Some(o) = old.sharing_rules.iter().find(|o| o.name == n.name) else {
            d.push(
                "sharing_rule",
                "added",
                n.name.clone(),
                format!(
                    "{} records shared with {} at {}",
                    n.object,
                    n.shared_with.describe(),
                    n.access.as_str()
                ),
                n.active,
                false,
            );
            continue;
        };
        let mut details = Vec::new();
        let mut widens = false;
        let mut narrows = false;
        if o.active != n.active {
            details.push(format!("active {} → {}", o.active, n.active));
            widens |= n.active;
            narrows |= !n.active;
        }
        if o.access != n.access {
            details.push(format!(
                "access {} → {}",
                o.access.as_str(),
                n.access.as_str()
            ));
            widens |= n.access > o.access;
            narrows |= n.access < o.access;
        }
        if o.shared_with != n.shared_with {
            details.push(format!(
                "shared with {} → {}",
                o.shared_with.describe(),
                n.shared_with.describe()
            ));
            widens = true;
            narrows = true;
        }
        if o.condition != n.condition {
            // A changed condition can match records it did not before; flag it.
            details.push(format!(
                "condition {} → {}",
                crate::crypto::canonical::to_string(&o.condition_source).unwrap_or_default(),
                crate::crypto::canonical::to_string(&n.condition_source).unwrap_or_default()
            ));
            widens = true;
        }
        if o.object != n.object {
            details.push(format!("object {} → {}", o.object, n.object));
            widens = true;
        }
        if !details.is_empty() {
            d.push(
                "sharing_rule",
                "changed",
                n.name.clone(),
                details.join("; "),
                widens && n.active,
                narrows,
            );
        }
    }
}

fn actions(d: &mut Diff, old: &Model, new: &Model) {
    for o in &old.actions {
        if new.action(&o.name).is_none() {
            d.push(
                "action",
                "removed",
                o.name.clone(),
                "clients calling it will get 404".into(),
                false,
                true,
            );
        }
    }
    for n in &new.actions {
        let Some(o) = old.action(&n.name) else {
            d.push(
                "action",
                "added",
                n.name.clone(),
                format!("on {}", n.object.as_deref().unwrap_or("(no object)")),
                false,
                false,
            );
            continue;
        };
        let lost: Vec<&String> = o
            .required_permissions
            .iter()
            .filter(|p| !n.required_permissions.contains(p))
            .collect();
        if !lost.is_empty() {
            d.push(
                "action",
                "changed",
                n.name.clone(),
                format!(
                    "no longer needs {}",
                    lost.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                true,
                false,
            );
        }
        if o.needs_review() && !n.needs_review() {
            d.push(
                "action",
                "changed",
                n.name.clone(),
                "agent runs no longer wait for review".into(),
                true,
                false,
            );
        }
        if o.patch != n.patch {
            d.push(
                "action",
                "changed",
                n.name.clone(),
                "sets different values".into(),
                false,
                false,
            );
        }
        if !o.ai_exposed && n.ai_exposed {
            d.push(
                "action",
                "changed",
                n.name.clone(),
                "now exposed to agents".into(),
                true,
                false,
            );
        }
    }
}
