//! Reading records: lists, aggregates and single records, each filtered by the
//! caller's record access inside the query and by field security on the way out;
//! reads of `auditReads` objects are audited.

use serde_json::{Map, Value, json};

use crate::audit::{self, Event};
use crate::authz::access::ObjectAccess;
use crate::error::ApiError;
use crate::model::filter::{Filter, Op as FilterOp};
use crate::model::*;
use crate::query::compile::{column_storage, filter_cond, sql_to_json};
use crate::query::request::{QuerySpec, Search};
use crate::records::{Caller, Page, Records, not_found_record, to_api};
use crate::store::*;

impl<'a> Records<'a> {
    /// The caller's conditions on top of record access: the filter, `?field=value`
    /// equalities and a text search, each field checked like a filter (an
    /// unreadable field answers `field_predicate_denied`, an unknown one
    /// `unknown_field`).
    fn user_cond(&self, access: &ObjectAccess<'a>, spec: &QuerySpec) -> Result<Cond, ApiError> {
        let object = access.object;
        for field in spec.filter.fields() {
            Self::check_field(access, field, true)?;
        }
        let mut conds = vec![
            filter_cond(object, &spec.filter)
                .map_err(|e| ApiError::bad_request("invalid_query", e))?,
        ];
        for (name, text) in &spec.equals {
            Self::check_field(access, name, true)?;
            let op = match object.field(name) {
                Some(field) => match crate::records::convert::from_text(field, text) {
                    Ok(Some(value)) => FilterOp::Eq(value),
                    Ok(None) => FilterOp::Null(true),
                    Err(why) => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("`{name}` {why}"),
                        ));
                    }
                },
                // A system field.
                None if name == "row_version" => {
                    FilterOp::Eq(text.parse::<i64>().map(|n| json!(n)).map_err(|_| {
                        ApiError::bad_request("invalid_query", "`row_version` is a whole number")
                    })?)
                }
                None => FilterOp::Eq(json!(text)),
            };
            conds.push(
                filter_cond(
                    object,
                    &Filter::Cmp {
                        field: name.clone(),
                        op,
                    },
                )
                .map_err(|e| ApiError::bad_request("invalid_query", e))?,
            );
        }
        if let Some(search) = &spec.search {
            conds.push(self.search_cond(access, search)?);
        }
        Ok(Cond::and(conds))
    }

    /// A case-insensitive text search over the text fields the caller can read
    /// (or the ones named, each checked like a filter): never over others.
    fn search_cond(&self, access: &ObjectAccess<'a>, search: &Search) -> Result<Cond, ApiError> {
        let searchable = |f: &FieldDef| {
            f.storage == Storage::Text
                && !f.multiple
                && !matches!(f.field_type, "password" | "secret")
                && !is_reference(f.field_type)
        };
        let fields: Vec<&FieldDef> = match &search.fields {
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    Self::check_field(access, name, true)?;
                    let field = access
                        .object
                        .field(name)
                        .filter(|f| searchable(f))
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "invalid_query",
                                format!("`{name}` is not a text field to search"),
                            )
                        })?;
                    out.push(field);
                }
                out
            }
            None => access.readable_fields().filter(|f| searchable(f)).collect(),
        };
        Ok(Cond::or(
            fields
                .into_iter()
                .map(|f| Cond::Text {
                    column: f.name.clone(),
                    mode: TextMatch::Contains,
                    needle: search.text.clone(),
                })
                .collect(),
        ))
    }

    /// Records visible to the caller, filtered, sorted and paged in SQL; lookups
    /// named in `expand` carry the record they point to, where the caller may read it.
    pub fn list(&self, caller: &Caller, spec: &QuerySpec) -> Result<Page, ApiError> {
        self.list_unaudited(caller, spec)
            .inspect_err(|e| self.refused_read(caller, &spec.object, None, e))
    }

    fn list_unaudited(&self, caller: &Caller, spec: &QuerySpec) -> Result<Page, ApiError> {
        let access = self.object_access(caller, &spec.object)?;
        let object = access.object;
        let mut columns = Self::columns(&access, spec.fields.as_ref())?;
        for name in &spec.expand {
            self.expandable(&access, name)?;
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
        for (field, _) in &spec.sort {
            Self::check_field(&access, field, true)?;
        }
        let user_cond = self.user_cond(&access, spec)?;
        let cond = self.narrowed(caller, object, user_cond);
        let mut order = spec.sort.clone();
        if !order.iter().any(|(f, _)| f == "id") {
            order.push(("id".into(), false));
        }
        // One row more than the page tells whether there is a next page.
        let select = Select {
            object: object.name.clone(),
            columns: columns.clone(),
            cond: cond.clone(),
            order,
            limit: Some(spec.limit + 1),
            offset: spec.offset,
            selective: !self.sees_all(caller, object),
        };
        let (mut rows, total) = self
            .instance
            .store
            .read(|tx| {
                let rows = tx.record_select(&select)?;
                let total = if spec.total {
                    Some(tx.record_count(&object.name, &cond)?)
                } else {
                    None
                };
                Ok((rows, total))
            })
            .map_err(to_api)?;
        let has_more = rows.len() as u64 > spec.limit;
        rows.truncate(spec.limit as usize);
        let mut records: Vec<Map<String, Value>> = rows
            .into_iter()
            .map(|r| Self::row_to_record(object, &columns, r))
            .collect();
        self.audit_reads(caller, object, &records, "list")?;
        for name in &spec.expand {
            self.expand(caller, &access, name, &mut records)?;
        }
        Ok(Page {
            records,
            total,
            has_more,
        })
    }

    /// A field `expand` may name: one the caller can read (else it answers like a
    /// field that does not exist), that points to records.
    fn expandable(&self, access: &ObjectAccess<'a>, name: &str) -> Result<(), ApiError> {
        Self::check_field(access, name, false)?;
        match access.object.field(name) {
            Some(f) if matches!(f.field_type, "lookup" | "master_detail") => Ok(()),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                format!("`{name}` is not a lookup field to expand"),
            )),
        }
    }

    /// Put in place of each id in `name` the record it points to, as the caller
    /// may read it (readable fields only); an id whose record they may not read
    /// stays an id, exactly as if it pointed nowhere.
    fn expand(
        &self,
        caller: &Caller,
        access: &ObjectAccess<'a>,
        name: &str,
        records: &mut [Map<String, Value>],
    ) -> Result<(), ApiError> {
        let Some(target) = access
            .object
            .field(name)
            .and_then(|f| f.reference())
            .and_then(|r| self.model.object(r))
        else {
            return Ok(());
        };
        let target_access = ObjectAccess::new(self.model, &caller.principal, target);
        if !target_access.can_read_object() {
            return Ok(());
        }
        let mut ids: Vec<String> = Vec::new();
        for record in records.iter() {
            match record.get(name) {
                Some(Value::String(id)) => ids.push(id.clone()),
                Some(Value::Array(items)) => {
                    ids.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
                }
                _ => {}
            }
        }
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let columns = Self::columns(&target_access, None)?;
        let mut found: std::collections::HashMap<String, Map<String, Value>> = Default::default();
        for chunk in ids.chunks(crate::limits::MAX_IN_VALUES) {
            let cond = Cond::and(vec![
                Cond::In {
                    column: "id".into(),
                    values: chunk.iter().map(|i| SqlValue::Text(i.clone())).collect(),
                    negate: false,
                },
                self.read_cond(caller, target),
            ]);
            let rows = self
                .instance
                .store
                .read(|tx| {
                    Ok(tx.record_select(&Select {
                        object: target.name.clone(),
                        columns: columns.clone(),
                        cond,
                        order: Vec::new(),
                        limit: None,
                        offset: 0,
                        selective: true,
                    })?)
                })
                .map_err(to_api)?;
            for row in rows {
                let record = Self::row_to_record(target, &columns, row);
                if let Some(id) = record.get("id").and_then(Value::as_str) {
                    found.insert(id.to_string(), record.clone());
                }
            }
        }
        let expanded: Vec<Map<String, Value>> = found.values().cloned().collect();
        self.audit_reads(caller, target, &expanded, "expand")?;
        let swap = |v: &Value| match v.as_str().and_then(|id| found.get(id)) {
            Some(record) => Value::Object(record.clone()),
            None => v.clone(),
        };
        for record in records.iter_mut() {
            if let Some(value) = record.get_mut(name) {
                let new = match &*value {
                    Value::Array(items) => Value::Array(items.iter().map(swap).collect()),
                    other => swap(other),
                };
                *value = new;
            }
        }
        Ok(())
    }

    /// Aggregates (`count count_distinct sum avg min max`, optionally grouped, by
    /// fields or by the UTC day, week, month, quarter or year of a date or
    /// date-time) over visible records. A group key or aggregated field is
    /// checked like a filter's before anything else is said about it.
    pub fn aggregate(
        &self,
        caller: &Caller,
        spec: &QuerySpec,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        self.aggregate_unaudited(caller, spec)
            .inspect_err(|e| self.refused_read(caller, &spec.object, None, e))
    }

    fn aggregate_unaudited(
        &self,
        caller: &Caller,
        spec: &QuerySpec,
    ) -> Result<Vec<Map<String, Value>>, ApiError> {
        let access = self.object_access(caller, &spec.object)?;
        let object = access.object;
        for key in &spec.group_by {
            Self::check_field(&access, &key.field, true)?;
            if key.granularity.is_some()
                && !matches!(
                    column_storage(object, &key.field),
                    Some(Storage::Date | Storage::DateTime)
                )
            {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "`{}` is not a date or datetime field; `dateGranularity` buckets only those",
                        key.field
                    ),
                ));
            }
        }
        for agg in &spec.aggregations {
            if let Some(field) = &agg.field {
                Self::check_field(&access, field, true)?;
                let storage = column_storage(object, field);
                if matches!(agg.function, AggFn::Sum | AggFn::Avg)
                    && storage != Some(Storage::Number)
                {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("`{field}` is not numeric; sum and avg need a number field"),
                    ));
                }
            }
        }
        let user_cond = self.user_cond(&access, spec)?;
        let agg = Aggregate {
            object: object.name.clone(),
            cond: self.narrowed(caller, object, user_cond),
            group_by: spec.group_by.clone(),
            aggs: spec
                .aggregations
                .iter()
                .map(|a| (a.function, a.field.clone()))
                .collect(),
            limit: spec.limit,
        };
        let rows = self
            .instance
            .store
            .read(|tx| Ok(tx.record_aggregate(&agg)?))
            .map_err(to_api)?;
        self.audit_aggregate(caller, object, spec)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut out = Map::new();
                let mut values = row.into_iter();
                for g in &spec.group_by {
                    // A date bucket is text (`2026-Q1`), whatever the column is.
                    let storage = match g.granularity {
                        Some(_) => Storage::Text,
                        None => column_storage(object, &g.field).unwrap_or(Storage::Text),
                    };
                    out.insert(
                        g.name().to_string(),
                        sql_to_json(storage, values.next().unwrap_or(SqlValue::Null)),
                    );
                }
                for a in &spec.aggregations {
                    let storage = match (a.function, &a.field) {
                        (AggFn::Min | AggFn::Max, Some(f)) => {
                            column_storage(object, f).unwrap_or(Storage::Number)
                        }
                        _ => Storage::Number,
                    };
                    out.insert(
                        a.alias.clone(),
                        sql_to_json(storage, values.next().unwrap_or(SqlValue::Null)),
                    );
                }
                out
            })
            .collect())
    }

    /// One record, or 404 when it does not exist or the caller cannot read it.
    pub fn get(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        self.get_shaped(caller, object, id, None, &[])
    }

    /// One record with only the fields asked for (`select`) and lookups expanded.
    pub fn get_shaped(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        fields: Option<&Vec<String>>,
        expand: &[String],
    ) -> Result<Map<String, Value>, ApiError> {
        self.get_unaudited(caller, object, id, fields, expand)
            .inspect_err(|e| self.refused_read(caller, object, Some(id), e))
    }

    fn get_unaudited(
        &self,
        caller: &Caller,
        object: &str,
        id: &str,
        fields: Option<&Vec<String>>,
        expand: &[String],
    ) -> Result<Map<String, Value>, ApiError> {
        let access = self.object_access(caller, object)?;
        let o = access.object;
        let mut columns = Self::columns(&access, fields)?;
        for name in expand {
            self.expandable(&access, name)?;
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
        let cond = Cond::and(vec![Self::id_cond(id), self.read_cond(caller, o)]);
        let rows = self
            .instance
            .store
            .read(|tx| {
                Ok(tx.record_select(&Select {
                    object: o.name.clone(),
                    columns: columns.clone(),
                    cond,
                    order: Vec::new(),
                    limit: Some(1),
                    offset: 0,
                    selective: true,
                })?)
            })
            .map_err(to_api)?;
        let record = rows
            .into_iter()
            .next()
            .map(|r| Self::row_to_record(o, &columns, r))
            .ok_or_else(|| not_found_record(object))?;
        self.audit_reads(caller, o, std::slice::from_ref(&record), "get")?;
        let mut records = vec![record];
        for name in expand {
            self.expand(caller, &access, name, &mut records)?;
        }
        Ok(records.pop().unwrap_or_default())
    }

    fn audit_reads(
        &self,
        caller: &Caller,
        object: &ObjectDef,
        records: &[Map<String, Value>],
        how: &str,
    ) -> Result<(), ApiError> {
        if !object.audit_reads {
            return Ok(());
        }
        let ids: Vec<Value> = records
            .iter()
            .filter_map(|r| r.get("id").cloned())
            .collect();
        self.instance
            .store
            .write(|tx| {
                audit::append(
                    tx,
                    &caller.origin,
                    Event::new("record.read").object(&object.name).changes(
                        json!({"read": how, "surface": caller.origin.via.as_str(), "ids": ids}),
                    ),
                )?;
                Ok(())
            })
            .map_err(to_api)
    }

    /// An aggregate over an `auditReads` object reads its values too: audited with
    /// the query's shape.
    fn audit_aggregate(
        &self,
        caller: &Caller,
        object: &ObjectDef,
        spec: &QuerySpec,
    ) -> Result<(), ApiError> {
        if !object.audit_reads {
            return Ok(());
        }
        let shape = json!({
            "read": "aggregate",
            "surface": caller.origin.via.as_str(),
            "filter": crate::model::filter::to_json(&spec.filter),
            "groupBy": spec.group_by.iter().map(|g| match g.granularity {
                None => json!(g.field),
                Some(granularity) => json!({"field": g.field, "dateGranularity": granularity.as_str()}),
            }).collect::<Vec<_>>(),
            "aggregations": spec.aggregations.iter().map(|a| json!({"function": a.function.as_str(), "field": a.field})).collect::<Vec<_>>(),
        });
        self.instance
            .store
            .write(|tx| {
                audit::append(
                    tx,
                    &caller.origin,
                    Event::new("record.read")
                        .object(&object.name)
                        .changes(shape),
                )?;
                Ok(())
            })
            .map_err(to_api)
    }
}
