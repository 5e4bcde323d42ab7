//! The apply plan: what a new artifact changes in the database, computed from the
//! applied model and the new one, and carried out in one transaction.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::{Model, ObjectDef, Unique, is_reference};
use crate::store::{Column, IndexSpec, SchemaChange};

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Step {
    /// `create_object`, `add_field`, `drop_field`, `drop_object`, `change_type`, `set_indexes`
    pub kind: &'static str,
    pub object: String,
    pub field: Option<String>,
    pub detail: String,
    /// Loses data: needs `--allow-destructive`
    pub destructive: bool,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Loaded {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub permission_sets: Loaded,
    pub sharing_rules: Loaded,
    pub actions: Loaded,
    pub destructive: bool,
    #[serde(skip)]
    pub changes: Vec<SchemaChange>,
}

/// Indexes an object's table needs: ownership and organization (every access
/// predicate uses them), fields sharing rules test (alone and with the owner),
/// uniqueness, references.
pub fn indexes_for(model: &Model, object: &ObjectDef) -> Vec<IndexSpec> {
    let mut out: Vec<IndexSpec> = Vec::new();
    let mut push = |columns: Vec<&str>, unique: bool| {
        let name = index_name(&object.name, &columns, unique);
        if !out.iter().any(|i| i.name == name) {
            out.push(IndexSpec {
                name,
                columns: columns.into_iter().map(str::to_string).collect(),
                unique,
            });
        }
    };
    // Access indexes end with `id`, the order of a page: a page of 20 is sorted
    // from the index, and only its rows are read from the table.
    push(vec!["organization_id", "owner_id", "id"], false);
    push(vec!["organization_id", "created_at"], false);
    for rule in model
        .sharing_rules
        .iter()
        .filter(|r| r.object == object.name)
    {
        for field in rule.condition.fields() {
            if object.field(field).is_some() {
                push(vec!["organization_id", field, "id"], false);
                // A field a rule tests is one people filter on: with the owner,
                // it serves "my records where field = x" without a scan of
                // every record of the owner.
                if object.has_owner() {
                    push(vec!["organization_id", "owner_id", field, "id"], false);
                }
            }
        }
    }
    for field in &object.fields {
        match field.unique {
            Unique::Organization => push(vec!["organization_id", &field.name], true),
            Unique::Global => push(vec![&field.name], true),
            Unique::No => {}
        }
        if is_reference(field.field_type) && !field.multiple {
            push(vec![&field.name], false);
        }
    }
    out.sort();
    out
}

/// Make the tables' indexes those this version of objectos chooses for the
/// applied model (a newer version may choose better ones for the same
/// artifact); answers the objects whose indexes were rebuilt.
pub fn ensure_indexes(instance: &super::Instance, model: &Model) -> anyhow::Result<Vec<String>> {
    let mut changes = Vec::new();
    instance.store.read(|tx| {
        for object in &model.objects {
            let wanted = indexes_for(model, object);
            let mut have = tx.record_index_names(&object.name)?;
            have.retain(|n| !n.starts_with("sqlite_autoindex"));
            have.sort();
            let mut names: Vec<String> = wanted.iter().map(|i| i.name.clone()).collect();
            names.sort();
            if have != names {
                changes.push(SchemaChange::SetIndexes {
                    object: object.name.clone(),
                    indexes: wanted,
                });
            }
        }
        Ok(())
    })?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    instance.with_admin_store(|store| store.write(|tx| Ok(tx.schema_apply(&changes)?)))?;
    Ok(changes
        .iter()
        .filter_map(|c| match c {
            SchemaChange::SetIndexes { object, .. } => Some(object.clone()),
            _ => None,
        })
        .collect())
}

fn index_name(object: &str, columns: &[&str], unique: bool) -> String {
    let base = format!(
        "{}{}_{}",
        if unique { "ux_" } else { "ix_" },
        object,
        columns.join("_")
    );
    if base.len() <= 60 {
        return base;
    }
    let digest = crate::crypto::signing::sha256_hex(base.as_bytes());
    format!("{}_{}", &base[..40], &digest[..12])
}

fn columns_of(object: &ObjectDef) -> Vec<Column> {
    object
        .fields
        .iter()
        .map(|f| Column {
            name: f.name.clone(),
            storage: f.storage,
        })
        .collect()
}

fn loaded<T>(
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> Loaded {
    let mut l = Loaded::default();
    for n in new {
        match old.iter().find(|o| name(o) == name(n)) {
            None => l.added.push(name(n).to_string()),
            Some(o) if !same(o, n) => l.changed.push(name(n).to_string()),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| name(n) == name(o)) {
            l.removed.push(name(o).to_string());
        }
    }
    l
}

/// The plan from `old` (the applied model, if any) to `new`.
pub fn plan(old: Option<&Model>, new: &Model) -> Plan {
    let mut steps = Vec::new();
    let mut changes = Vec::new();
    for object in &new.objects {
        let before = old.and_then(|m| m.object(&object.name));
        match before {
            None => {
                steps.push(Step {
                    kind: "create_object",
                    object: object.name.clone(),
                    field: None,
                    detail: format!(
                        "create table with {} fields and the system columns",
                        object.fields.len()
                    ),
                    destructive: false,
                });
                changes.push(SchemaChange::CreateTable {
                    object: object.name.clone(),
                    columns: columns_of(object),
                });
            }
            Some(before) => {
                for field in &object.fields {
                    match before.field(&field.name) {
                        None => {
                            steps.push(Step {
                                kind: "add_field",
                                object: object.name.clone(),
                                field: Some(field.name.clone()),
                                detail: format!("add {} column", field.field_type),
                                destructive: false,
                            });
                            changes.push(SchemaChange::AddColumn {
                                object: object.name.clone(),
                                column: Column {
                                    name: field.name.clone(),
                                    storage: field.storage,
                                },
                            });
                        }
                        Some(old_field) if old_field.storage != field.storage => {
                            steps.push(Step {
                                kind: "change_type",
                                object: object.name.clone(),
                                field: Some(field.name.clone()),
                                detail: format!(
                                    "{} → {}: the column is recreated and its values are lost",
                                    old_field.field_type, field.field_type
                                ),
                                destructive: true,
                            });
                            changes.push(SchemaChange::DropColumn {
                                object: object.name.clone(),
                                column: field.name.clone(),
                            });
                            changes.push(SchemaChange::AddColumn {
                                object: object.name.clone(),
                                column: Column {
                                    name: field.name.clone(),
                                    storage: field.storage,
                                },
                            });
                        }
                        Some(old_field) if old_field.field_type != field.field_type => {
                            steps.push(Step {
                                kind: "change_type",
                                object: object.name.clone(),
                                field: Some(field.name.clone()),
                                detail: format!("{} → {}: same storage, values kept (new writes are checked as {})", old_field.field_type, field.field_type, field.field_type),
                                destructive: false,
                            });
                        }
                        Some(_) => {}
                    }
                }
                for old_field in &before.fields {
                    if object.field(&old_field.name).is_none() {
                        steps.push(Step {
                            kind: "drop_field",
                            object: object.name.clone(),
                            field: Some(old_field.name.clone()),
                            detail: "drop the column and its values".into(),
                            destructive: true,
                        });
                        changes.push(SchemaChange::DropColumn {
                            object: object.name.clone(),
                            column: old_field.name.clone(),
                        });
                    }
                }
            }
        }
    }
    if let Some(old) = old {
        for object in &old.objects {
            if new.object(&object.name).is_none() {
                steps.push(Step {
                    kind: "drop_object",
                    object: object.name.clone(),
                    field: None,
                    detail: "drop the table and every record in it".into(),
                    destructive: true,
                });
                changes.push(SchemaChange::DropTable {
                    object: object.name.clone(),
                });
            }
        }
    }
    for object in &new.objects {
        let wanted = indexes_for(new, object);
        let had = old.and_then(|m| m.object(&object.name).map(|o| indexes_for(m, o)));
        let dropped_columns = changes
            .iter()
            .any(|c| matches!(c, SchemaChange::DropColumn { object: o, .. } if *o == object.name));
        if had.as_ref() != Some(&wanted) || dropped_columns {
            let names: BTreeSet<String> = wanted
                .iter()
                .map(|i| {
                    format!(
                        "{}({})",
                        if i.unique { "unique " } else { "" },
                        i.columns.join(", ")
                    )
                })
                .collect();
            steps.push(Step {
                kind: "set_indexes",
                object: object.name.clone(),
                field: None,
                detail: names.into_iter().collect::<Vec<_>>().join("; "),
                destructive: false,
            });
            changes.push(SchemaChange::SetIndexes {
                object: object.name.clone(),
                indexes: wanted,
            });
        }
    }
    let empty_sets = Vec::new();
    let empty_rules = Vec::new();
    let empty_actions = Vec::new();
    let permission_sets = loaded(
        old.map(|m| &m.permission_sets).unwrap_or(&empty_sets),
        &new.permission_sets,
        |p| &p.name,
        |a, b| {
            a.objects == b.objects
                && a.fields == b.fields
                && a.system_permissions == b.system_permissions
                && a.is_default == b.is_default
        },
    );
    let sharing_rules = loaded(
        old.map(|m| &m.sharing_rules).unwrap_or(&empty_rules),
        &new.sharing_rules,
        |r| &r.name,
        |a, b| {
            a.object == b.object
                && a.active == b.active
                && a.condition == b.condition
                && a.access == b.access
                && a.shared_with == b.shared_with
        },
    );
    let actions = loaded(
        old.map(|m| &m.actions).unwrap_or(&empty_actions),
        &new.actions,
        |a| &a.name,
        |a, b| {
            a.patch == b.patch
                && a.required_permissions == b.required_permissions
                && a.object == b.object
        },
    );
    let destructive = steps.iter().any(|s| s.destructive);
    Plan {
        steps,
        permission_sets,
        sharing_rules,
        actions,
        destructive,
        changes,
    }
}
