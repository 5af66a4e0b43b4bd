//! List PhoneCalls: the UAPI collection, served from the tracker's memory.
//!
//! Paging walks the tracker's ordered index of the requested scope, so a page costs what
//! its entries cost, not what the whole PBX holds. Filters scan the scope.

use std::collections::HashMap;

use serde::Serialize;

use super::error::ApiError;
use super::target::Target;
use crate::calls::tracker::{CallState, OrderKey};
use crate::calls::{phone_call, PhoneCall, Tracker};

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterBy {
    Id,
    Published,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Equals,
    GreaterThan,
    LessThan,
    Present,
    StartsWith,
    Contains,
    InArray,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub by: FilterBy,
    pub op: FilterOp,
    pub value: String,
}

/// The query of a listing, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub count: usize,
    pub start_index: usize,
    pub filter: Option<Filter>,
    pub descending: bool,
    pub sorted: bool,
    pub fields: Option<Vec<String>>,
}

const FIELDS: &[&str] = &[
    "id",
    "extension",
    "ownerId",
    "ownerName",
    "published",
    "answered",
    "phoneCallView",
    "link",
];

impl ListQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
        let num = |key: &str,
                   code: &'static str,
                   default: usize,
                   max: usize|
         -> Result<usize, ApiError> {
            match q.get(key).map(|s| s.trim()) {
                None | Some("") => Ok(default),
                Some(s) => match s.parse::<usize>() {
                    Ok(n) if n <= max => Ok(n),
                    _ => Err(ApiError::bad_request(
                        code,
                        format!("{key} must be a whole number from 0 to {max}"),
                    )),
                },
            }
        };
        let count = num("count", "count_invalid", DEFAULT_COUNT, MAX_COUNT)?;
        if count == 0 {
            return Err(ApiError::bad_request(
                "count_invalid",
                format!("count must be from 1 to {MAX_COUNT}"),
            ));
        }
        let start_index = num("startIndex", "start_index_invalid", 0, usize::MAX)?;

        let filter = match q
            .get("filterBy")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(by) => {
                let by = match by {
                    "id" => FilterBy::Id,
                    "published" => FilterBy::Published,
                    _ => {
                        return Err(ApiError::bad_request(
                            "filter_invalid",
                            "filterBy must be id or published",
                        ))
                    }
                };
                let op = match q.get("filterOp").map(|s| s.trim()).unwrap_or("equals") {
                    "" | "equals" => FilterOp::Equals,
                    "greaterThan" => FilterOp::GreaterThan,
                    "lessThan" => FilterOp::LessThan,
                    "present" => FilterOp::Present,
                    "startsWith" => FilterOp::StartsWith,
                    "contains" => FilterOp::Contains,
                    "inArray" => FilterOp::InArray,
                    other => {
                        return Err(ApiError::bad_request(
                            "filter_invalid",
                            format!("filterOp {other:?} is not known"),
                        ))
                    }
                };
                let value = q.get("filterValue").cloned().unwrap_or_default();
                if op != FilterOp::Present && value.is_empty() {
                    return Err(ApiError::bad_request(
                        "filter_invalid",
                        "filterValue is required",
                    ));
                }
                if by == FilterBy::Published
                    && matches!(
                        op,
                        FilterOp::Equals | FilterOp::GreaterThan | FilterOp::LessThan
                    )
                    && chrono::DateTime::parse_from_rfc3339(value.trim()).is_err()
                {
                    return Err(ApiError::bad_request(
                        "filter_invalid",
                        "filterValue must be a date like 2012-06-27T16:08:55+03:00",
                    ));
                }
                Some(Filter { by, op, value })
            }
        };

        let (descending, sorted) = match q.get("sortOrder").map(|s| s.trim()) {
            None | Some("") => (false, false),
            Some("ascending") | Some("asc") => (false, true),
            Some("descending") | Some("desc") => (true, true),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "sort_order_invalid",
                    "sortOrder must be ascending or descending",
                ))
            }
        };

        let fields = match q.get("fields").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => None,
            Some(f) => {
                let list: Vec<String> = f
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = list.iter().find(|f| !FIELDS.contains(&f.as_str())) {
                    return Err(ApiError::bad_request(
                        "fields_invalid",
                        format!("{bad:?} is not a PhoneCall field"),
                    ));
                }
                Some(list)
            }
        };

        Ok(ListQuery {
            count,
            start_index,
            filter,
            descending,
            sorted,
            fields,
        })
    }
}

impl Filter {
    fn matches(&self, call: &CallState) -> bool {
        match self.by {
            FilterBy::Id => {
                let id: &str = &call.id;
                match self.op {
                    FilterOp::Equals => id == self.value,
                    FilterOp::StartsWith => id.starts_with(&self.value),
                    FilterOp::Contains => id.contains(&self.value),
                    FilterOp::InArray => self.value.split(',').any(|v| v.trim() == id),
                    FilterOp::Present => true,
                    FilterOp::GreaterThan => id > self.value.as_str(),
                    FilterOp::LessThan => id < self.value.as_str(),
                }
            }
            FilterBy::Published => {
                let p = call.published;
                let value = || chrono::DateTime::parse_from_rfc3339(self.value.trim()).ok();
                match self.op {
                    FilterOp::Equals => value().is_some_and(|v| p.timestamp() == v.timestamp()),
                    FilterOp::GreaterThan => value().is_some_and(|v| p > v),
                    FilterOp::LessThan => value().is_some_and(|v| p < v),
                    FilterOp::Present => true,
                    FilterOp::StartsWith | FilterOp::Contains | FilterOp::InArray => {
                        let text = crate::calls::projection::format_time(&p);
                        match self.op {
                            FilterOp::StartsWith => text.starts_with(&self.value),
                            FilterOp::Contains => text.contains(&self.value),
                            _ => self.value.split(',').any(|v| v.trim() == text),
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection<T> {
    pub entry: Vec<T>,
    pub start_index: usize,
    pub total_results: usize,
    pub items_per_page: usize,
    pub filtered: bool,
    pub sorted: bool,
    pub paging: Paging,
}

/// One entry of a listing: the PhoneCall as it is, or cut down to the fields asked for.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Whole(PhoneCall),
    Fields(serde_json::Value),
}

/// The page of calls a listing returns; `only` restricts it to one call id.
pub fn list(
    t: &Tracker,
    target: &Target,
    only: Option<&str>,
    q: &ListQuery,
    base_url: &str,
    path: &str,
) -> Collection<Entry> {
    let scope = target.scope();
    let wanted = |c: &CallState| q.filter.as_ref().is_none_or(|f| f.matches(c));
    let (total, page): (usize, Vec<&CallState>) = match only {
        Some(id) => {
            let hit = t.call(id).filter(|c| t.in_scope(c, scope) && wanted(c));
            let n = usize::from(hit.is_some());
            (n, hit.into_iter().skip(q.start_index).collect())
        }
        None => {
            let keys = t.scope(scope);
            let iter: Box<dyn Iterator<Item = &OrderKey>> = if q.descending {
                Box::new(keys.iter().rev())
            } else {
                Box::new(keys.iter())
            };
            if q.filter.is_none() {
                let page = iter
                    .skip(q.start_index)
                    .take(q.count)
                    .filter_map(|(_, id)| t.call(id))
                    .collect();
                (keys.len(), page)
            } else {
                let all: Vec<&CallState> = iter
                    .filter_map(|(_, id)| t.call(id))
                    .filter(|c| wanted(c))
                    .collect();
                let n = all.len();
                (
                    n,
                    all.into_iter().skip(q.start_index).take(q.count).collect(),
                )
            }
        }
    };
    let entry = page
        .into_iter()
        .map(|c| shape(phone_call(t, c, base_url), q.fields.as_deref()))
        .collect();
    let link = |start: usize| format!("{base_url}{path}?startIndex={start}&count={}", q.count);
    let next = (q.start_index + q.count < total).then(|| link(q.start_index + q.count));
    let prev = (q.start_index > 0).then(|| link(q.start_index.saturating_sub(q.count)));
    Collection {
        entry,
        start_index: q.start_index,
        total_results: total,
        items_per_page: q.count,
        filtered: q.filter.is_some(),
        sorted: q.sorted,
        paging: Paging { next, prev },
    }
}

/// A PhoneCall, cut down to `fields` when the client asked for some (`id` stays).
fn shape(call: PhoneCall, fields: Option<&[String]>) -> Entry {
    let Some(fields) = fields else {
        return Entry::Whole(call);
    };
    let mut v = serde_json::to_value(call).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|k, _| k == "id" || fields.iter().any(|f| f == k));
    }
    Entry::Fields(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ApiError> {
        ListQuery::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_and_bounds() {
        let d = q(&[]).unwrap();
        assert_eq!((d.count, d.start_index, d.sorted), (20, 0, false));
        assert_eq!(q(&[("count", "0")]).unwrap_err().code, "count_invalid");
        assert_eq!(q(&[("count", "5001")]).unwrap_err().code, "count_invalid");
        assert_eq!(q(&[("count", "x")]).unwrap_err().code, "count_invalid");
        assert_eq!(
            q(&[("startIndex", "-1")]).unwrap_err().code,
            "start_index_invalid"
        );
        assert_eq!(q(&[("count", "5000")]).unwrap().count, 5000);
    }

    #[test]
    fn filters_sort_and_fields() {
        let f = q(&[
            ("filterBy", "id"),
            ("filterValue", "ab"),
            ("filterOp", "startsWith"),
        ])
        .unwrap();
        assert_eq!(f.filter.unwrap().op, FilterOp::StartsWith);
        assert_eq!(
            q(&[("filterBy", "name"), ("filterValue", "x")])
                .unwrap_err()
                .code,
            "filter_invalid"
        );
        assert_eq!(q(&[("filterBy", "id")]).unwrap_err().code, "filter_invalid");
        assert_eq!(
            q(&[
                ("filterBy", "published"),
                ("filterValue", "soon"),
                ("filterOp", "greaterThan")
            ])
            .unwrap_err()
            .code,
            "filter_invalid"
        );
        assert!(q(&[
            ("filterBy", "published"),
            ("filterValue", "2026-01-01T00:00:00+00:00"),
            ("filterOp", "greaterThan")
        ])
        .is_ok());
        assert!(q(&[("sortOrder", "descending")]).unwrap().descending);
        assert_eq!(
            q(&[("sortOrder", "sideways")]).unwrap_err().code,
            "sort_order_invalid"
        );
        assert_eq!(
            q(&[("fields", "id,phoneCallView")])
                .unwrap()
                .fields
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            q(&[("fields", "id,secret")]).unwrap_err().code,
            "fields_invalid"
        );
    }
}
