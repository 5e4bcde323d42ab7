//! Object metadata as the caller may see it: readable objects and fields only.

use serde_json::{Value, json};

use crate::authz::Principal;
use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::model::{FieldDef, Model, Unique};
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
        "reference": if reference_visible { json!(f.reference) } else { Value::Null },
        "options": if f.options.is_empty() { Value::Null } else { json!(f.options) },
        "maxLength": f.max_length,
        "min": f.min,
        "max": f.max,
        "creatable": access.field_creatable(&f.name),
        "editable": access.field_updatable(&f.name),
    })
}

fn object_view(model: &Model, principal: &Principal, access: &ObjectAccess<'_>) -> Value {
    let o = access.object;
    let reference_visible =
        |f: &FieldDef| match f.reference.as_deref().map(|r| (r, model.object(r))) {
            None => true,
            Some((_, Some(target))) => {
                ObjectAccess::new(model, principal, target).can_read_object()
            }
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
            .map(|f| field_view(access, f, reference_visible(f)))
            .collect::<Vec<_>>(),
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
}
