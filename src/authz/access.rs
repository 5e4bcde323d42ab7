//! Record access and field security for one principal on one object
//! (docs/security-model.md).

use crate::authz::Principal;
use crate::model::*;

/// Operations on records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Edit,
    Delete,
}

/// One way a record can be reachable, before compiling to a condition.
#[derive(Debug, Clone)]
pub enum Grant<'m> {
    /// Every record of the organization.
    All,
    /// Records the user owns.
    Owner(String),
    /// Records matching a sharing rule that shares them with the user.
    Rule(&'m SharingRuleDef),
    /// Records explicitly shared with the user or a team of theirs.
    Shared { edit: bool },
    /// Child records whose parent (through `field`) is reachable by `access`.
    Parent {
        field: String,
        parent: &'m ObjectDef,
        access: Box<RecordAccess<'m>>,
    },
}

/// Which records of an object an operation may touch, inside the credential's
/// organization. `None` also means the object itself is out of reach.
#[derive(Debug, Clone)]
pub enum RecordAccess<'m> {
    None,
    /// Any of the grants, and (for edit and delete) readable as well.
    Any {
        grants: Vec<Grant<'m>>,
        also_readable: Option<Box<RecordAccess<'m>>>,
    },
}

impl RecordAccess<'_> {
    pub fn is_none(&self) -> bool {
        matches!(self, RecordAccess::None)
    }
}

/// The rights and field rules of one principal on one object.
#[derive(Debug, Clone)]
pub struct ObjectAccess<'m> {
    pub object: &'m ObjectDef,
    pub rights: ObjectRights,
    readable: Vec<bool>,
    creatable: Vec<bool>,
    updatable: Vec<bool>,
    gate_read: bool,
    gate_create: bool,
    gate_update: bool,
    gate_delete: bool,
}

fn holds_all(principal: &Principal, needed: &[String]) -> bool {
    needed.iter().all(|p| principal.has(p))
}

impl<'m> ObjectAccess<'m> {
    pub fn new(model: &'m Model, principal: &Principal, object: &'m ObjectDef) -> ObjectAccess<'m> {
        let rights = if principal.disabled {
            ObjectRights::default()
        } else {
            principal.object_rights(model, &object.name)
        };
        // The sets in force, with their implied rights on this object.
        let sets: Vec<(&PermissionSetDef, ObjectRights)> = principal
            .sets
            .iter()
            .filter_map(|name| model.permission_set(name))
            .filter_map(|set| set.objects.get(&object.name).map(|r| (set, r.implied())))
            .collect();
        let field_rule = |field: &FieldDef,
                          grants: &dyn Fn(&ObjectRights) -> bool,
                          pick: &dyn Fn(&FieldRights) -> bool|
         -> bool {
            if field.internal || !holds_all(principal, &field.required_permissions) {
                return false;
            }
            sets.iter().filter(|(_, r)| grants(r)).any(|(set, _)| {
                match set.fields.get(&(object.name.clone(), field.name.clone())) {
                    None => !field.sensitive,
                    Some(declared) => pick(declared),
                }
            })
        };
        let readable = object
            .fields
            .iter()
            .map(|f| field_rule(f, &|r| r.read, &|d| d.readable))
            .collect();
        let creatable = object
            .fields
            .iter()
            .map(|f| !f.readonly && field_rule(f, &|r| r.create, &|d| d.editable))
            .collect();
        let updatable = object
            .fields
            .iter()
            .map(|f| !f.readonly && field_rule(f, &|r| r.edit, &|d| d.editable))
            .collect();
        let gate = &object.required_permissions;
        ObjectAccess {
            object,
            rights,
            readable,
            creatable,
            updatable,
            gate_read: holds_all(principal, &gate.read),
            gate_create: holds_all(principal, &gate.create),
            gate_update: holds_all(principal, &gate.update),
            gate_delete: holds_all(principal, &gate.delete),
        }
    }

    fn index(&self, field: &str) -> Option<usize> {
        self.object.fields.iter().position(|f| f.name == field)
    }

    /// Whether the object exists for this principal at all.
    pub fn can_read_object(&self) -> bool {
        self.rights.read && self.gate_read
    }

    pub fn can_create(&self) -> bool {
        self.can_read_object() && self.rights.create && self.gate_create
    }

    pub fn can_edit(&self) -> bool {
        self.can_read_object() && self.rights.edit && self.gate_update
    }

    pub fn can_delete(&self) -> bool {
        self.can_read_object() && self.rights.delete && self.gate_delete
    }

    pub fn can_export(&self) -> bool {
        self.can_read_object() && self.rights.export
    }

    /// System fields are readable by whoever reads the record.
    pub fn field_readable(&self, field: &str) -> bool {
        if SYSTEM_FIELDS.contains(&field) {
            return self.can_read_object();
        }
        self.index(field).is_some_and(|i| self.readable[i]) && self.can_read_object()
    }

    pub fn field_creatable(&self, field: &str) -> bool {
        if field == "owner_id" {
            return self.object.has_owner() && self.rights.modify_all;
        }
        self.index(field).is_some_and(|i| self.creatable[i])
    }

    pub fn field_updatable(&self, field: &str) -> bool {
        if field == "owner_id" {
            return self.object.has_owner() && self.rights.modify_all;
        }
        self.index(field).is_some_and(|i| self.updatable[i])
    }

    pub fn readable_fields(&self) -> impl Iterator<Item = &'m FieldDef> + '_ {
        self.object
            .fields
            .iter()
            .enumerate()
            .filter(|(i, _)| self.readable[*i])
            .map(|(_, f)| f)
    }
}

fn rule_applies(rule: &SharingRuleDef, principal: &Principal) -> bool {
    match &rule.shared_with {
        Grantee::User(who) => {
            who.eq_ignore_ascii_case(&principal.email) || *who == principal.user_id
        }
        Grantee::Team(team) => principal.teams.contains(team),
    }
}

/// Which records of `object` the principal may touch with `op` (the decision
/// table of docs/security-model.md).
pub fn record_access<'m>(
    model: &'m Model,
    principal: &Principal,
    object: &'m ObjectDef,
    op: Op,
) -> RecordAccess<'m> {
    record_access_depth(model, principal, object, op, 0)
}

fn record_access_depth<'m>(
    model: &'m Model,
    principal: &Principal,
    object: &'m ObjectDef,
    op: Op,
    depth: usize,
) -> RecordAccess<'m> {
    let access = ObjectAccess::new(model, principal, object);
    let allowed = match op {
        Op::Read => access.can_read_object(),
        Op::Edit => access.can_edit(),
        Op::Delete => access.can_delete(),
    };
    // A parent chain deeper than this is a cycle or absurd; refuse rather than loop.
    if !allowed || depth > 8 {
        return RecordAccess::None;
    }
    let r = access.rights;
    let mut grants = Vec::new();
    if let (SharingModel::ControlledByParent, Some(field)) =
        (object.sharing_model, &object.parent_field)
    {
        let bypass = match op {
            Op::Read => r.view_all || r.read_org,
            Op::Edit => r.modify_all || r.write_org,
            Op::Delete => r.modify_all,
        };
        if bypass {
            grants.push(Grant::All);
        } else if let Some(parent) = object
            .field(field)
            .and_then(|f| f.reference())
            .and_then(|p| model.object(p))
        {
            let parent_op = if op == Op::Read { Op::Read } else { Op::Edit };
            let parent_access = record_access_depth(model, principal, parent, parent_op, depth + 1);
            if !parent_access.is_none() {
                grants.push(Grant::Parent {
                    field: field.clone(),
                    parent,
                    access: Box::new(parent_access),
                });
            }
        }
    } else {
        let everything = match op {
            Op::Read => {
                r.view_all || r.read_org || object.sharing_model >= SharingModel::PublicRead
            }
            Op::Edit => {
                r.modify_all || r.write_org || object.sharing_model == SharingModel::PublicReadWrite
            }
            Op::Delete => r.modify_all,
        };
        if everything {
            grants.push(Grant::All);
        } else {
            if object.has_owner() {
                grants.push(Grant::Owner(principal.user_id.clone()));
            }
            if op != Op::Delete {
                for rule in model.rules_for(&object.name) {
                    if rule_applies(rule, principal)
                        && (op == Op::Read || rule.access == AccessLevel::Edit)
                    {
                        grants.push(Grant::Rule(rule));
                    }
                }
                grants.push(Grant::Shared {
                    edit: op == Op::Edit,
                });
            }
        }
    }
    if grants.is_empty() {
        return RecordAccess::None;
    }
    let also_readable = if op == Op::Read {
        None
    } else {
        Some(Box::new(record_access_depth(
            model,
            principal,
            object,
            Op::Read,
            depth,
        )))
    };
    RecordAccess::Any {
        grants,
        also_readable,
    }
}
