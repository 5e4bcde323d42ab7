//! Metadata as the caller may see it: readable objects and their readable fields
//! (keyed by name, as upstream's object schema has them), and the actions of
//! objects they can read. What they cannot read is absent, never marked.

use serde_json::{Value, json};

use crate::authz::Principal;
use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::model::{ActionDef, FieldDef, Model, Unique};
use crate::records::{Caller, Records};

fn field_view(access: &ObjectAccess<'_>, f: &FieldDef, reference_visible: bool) -> Value {
    json!({
        "name": f.name,
        "label": f.label,
        "type": f.field_type,
        "required": f.required,
        "unique": f.unique != Unique::No,
        "readonly": f.readonly,
        "multiple": f.multiple,
        // The target of a reference is named only when the caller can read that
        // object: an unreadable object is indistinguishable from a missing one.
        "reference": if reference_visible { json!(f.reference()) } else { Value::Null },
        "options": if f.options().is_empty() {
            Value::Null
        } else {
            json!(f.options().iter().map(|v| json!({ "label": v, "value": v })).collect::<Vec<_>>())
        },
        "maxLength": f.max_length(),
        "min": f.min(),
        "max": f.max(),
        "creatable": access.field_creatable(&f.name),
        "editable": access.field_updatable(&f.name),
    })
}

fn object_view(model: &Model, principal: &Principal, access: &ObjectAccess<'_>) -> Value {
    let o = access.object;
    let reference_visible = |f: &FieldDef| match f.reference().map(|r| (r, model.object(r))) {
        None => true,
        Some((_, Some(target))) => ObjectAccess::new(model, principal, target).can_read_object(),
        // Not an object of the app (upstream's `sys_user`, say): nothing to hide.
        Some((_, None)) => true,
    };
    json!({
        "name": o.name,
        "label": o.label,
        "ownership": o.ownership.as_str(),
        "sharingModel": o.sharing_model.as_str(),
        "readOnly": o.read_only,
        "permissions": {
            "read": access.can_read_object(),
            "create": access.can_create() && !o.read_only,
            "edit": access.can_edit() && !o.read_only,
            "delete": access.can_delete() && !o.read_only,
            "viewAllRecords": access.rights.view_all,
            "modifyAllRecords": access.rights.modify_all,
            "export": access.can_export(),
        },
        "fields": access
            .readable_fields()
            .map(|f| (f.name.clone(), field_view(access, f, reference_visible(f))))
            .collect::<serde_json::Map<String, Value>>(),
    })
}

/// An action as its caller may see it: what it is and whether they may run it,
/// never the fields its patch writes.
fn action_view(caller: &Caller, a: &ActionDef) -> Value {
    json!({
        "name": a.name,
        "label": a.label,
        "objectName": a.object,
        "type": a.action_type,
        "executable": a.executable(),
        "permitted": a.required_permissions.iter().all(|p| caller.principal.has(p)),
        "confirmText": a.confirm_text,
        "variant": a.variant,
        "ai": {
            "exposed": a.ai_exposed,
            "description": a.ai_description,
            "requiresConfirmation": a.requires_confirmation,
        },
    })
}

impl Records<'_> {
    /// Every object the caller can read.
    pub fn meta_objects(&self, caller: &Caller) -> Vec<Value> {
        self.model
            .objects
            .iter()
            .map(|o| ObjectAccess::new(self.model, &caller.principal, o))
            .filter(|a| a.can_read_object())
            .map(|a| object_view(self.model, &caller.principal, &a))
            .collect()
    }

    pub fn meta_object(&self, caller: &Caller, name: &str) -> Result<Value, ApiError> {
        let access = self.object_access(caller, name)?;
        Ok(object_view(self.model, &caller.principal, &access))
    }

    /// Whether the caller may know the action exists: its object is one they can
    /// read (or it has none).
    fn action_visible(&self, caller: &Caller, action: &ActionDef) -> bool {
        match &action.object {
            None => true,
            Some(o) => self.object_access(caller, o).is_ok(),
        }
    }

    /// The actions of the objects the caller can read.
    pub fn meta_actions(&self, caller: &Caller) -> Vec<Value> {
        self.model
            .actions
            .iter()
            .filter(|a| self.action_visible(caller, a))
            .map(|a| action_view(caller, a))
            .collect()
    }

    pub fn meta_action(&self, caller: &Caller, name: &str) -> Result<Value, ApiError> {
        self.model
            .action(name)
            .filter(|a| self.action_visible(caller, a))
            .map(|a| action_view(caller, a))
            .ok_or_else(|| ApiError::not_found(format!("no action `{name}`")))
    }
}
