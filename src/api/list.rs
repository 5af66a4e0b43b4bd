//! List PhoneCalls: the UAPI collection, served from the tracker's memory.
//!
//! Paging walks the tracker's ordered index of the requested scope, so a page costs what
//! its entries cost, not what the whole PBX holds. Filters scan the scope.

use std::collections::HashMap;

use serde::Serialize;

use super::error::{ApiError, Code};
use crate::calls::projection::format_time;
use crate::calls::state::{CallState, OrderKey, Time};
use crate::calls::{phone_call, PhoneCall, Scope, Tracker};

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 5000;

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

/// What a filter compares, parsed once: the id as text, or `published` as a date (for
/// equals, greaterThan and lessThan) or as its text (for the text operators).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Id(String),
    PublishedAt(Time),
    PublishedText(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub op: FilterOp,
    pub value: FilterValue,
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

/// A query parameter, trimmed; `None` when absent or empty.
fn param<'q>(q: &'q HashMap<String, String>, key: &str) -> Option<&'q str> {
    q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A whole number from 0 to `max`.
fn number(
    q: &HashMap<String, String>,
    key: &str,
    code: Code,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(q, key) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad_request(
                code,
                format!("{key} must be a whole number from 0 to {max}"),
            )),
        },
    }
}

impl ListQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
        let count = number(q, "count", Code::CountInvalid, DEFAULT_COUNT, MAX_COUNT)?;
        if count == 0 {
            return Err(ApiError::bad_request(
                Code::CountInvalid,
                format!("count must be from 1 to {MAX_COUNT}"),
            ));
        }
        let (descending, sorted) = match param(q, "sortOrder") {
            None => (false, false),
            Some("ascending") | Some("asc") => (false, true),
            Some("descending") | Some("desc") => (true, true),
            Some(_) => {
                return Err(ApiError::bad_request(
                    Code::SortOrderInvalid,
                    "sortOrder must be ascending or descending",
                ))
            }
        };
        Ok(ListQuery {
            count,
            start_index: number(q, "startIndex", Code::StartIndexInvalid, 0, usize::MAX)?,
            filter: Filter::parse(q)?,
            descending,
            sorted,
            fields: parse_fields(q)?,
        })
    }
}

fn parse_fields(q: &HashMap<String, String>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(f) = param(q, "fields") else {
        return Ok(None);
    };
    let list: Vec<String> = f
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = list.iter().find(|f| !FIELDS.contains(&f.as_str())) {
        return Err(ApiError::bad_request(
            Code::FieldsInvalid,
            format!("{bad:?} is not a PhoneCall field"),
        ));
    }
    Ok(Some(list))
}

impl Filter {
    fn parse(q: &HashMap<String, String>) -> Result<Option<Filter>, ApiError> {
        let bad = |m: String| ApiError::bad_request(Code::FilterInvalid, m);
        let Some(by) = param(q, "filterBy") else {
            return Ok(None);
        };
        let op = match q.get("filterOp").map(|s| s.trim()).unwrap_or("equals") {
            "" | "equals" => FilterOp::Equals,
            "greaterThan" => FilterOp::GreaterThan,
            "lessThan" => FilterOp::LessThan,
            "present" => FilterOp::Present,
            "startsWith" => FilterOp::StartsWith,
            "contains" => FilterOp::Contains,
            "inArray" => FilterOp::InArray,
            other => return Err(bad(format!("filterOp {other:?} is not known"))),
        };
        let text = q.get("filterValue").cloned().unwrap_or_default();
        if op != FilterOp::Present && text.is_empty() {
            return Err(bad("filterValue is required".into()));
        }
        let by_date = matches!(
            op,
            FilterOp::Equals | FilterOp::GreaterThan | FilterOp::LessThan
        );
        let value = match by {
            "id" => FilterValue::Id(text),
            "published" if by_date => chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(FilterValue::PublishedAt)
                .map_err(|_| {
                    bad("filterValue must be a date like 2012-06-27T16:08:55+03:00".into())
                })?,
            "published" => FilterValue::PublishedText(text),
            _ => return Err(bad("filterBy must be id or published".into())),
        };
        Ok(Some(Filter { op, value }))
    }

    fn matches(&self, call: &CallState) -> bool {
        let texts = |have: &str, want: &str| match self.op {
            FilterOp::Equals => have == want,
            FilterOp::StartsWith => have.starts_with(want),
            FilterOp::Contains => have.contains(want),
            FilterOp::InArray => want.split(',').any(|v| v.trim() == have),
            FilterOp::Present => true,
            FilterOp::GreaterThan => have > want,
            FilterOp::LessThan => have < want,
        };
        match &self.value {
            FilterValue::Id(want) => texts(&call.id, want),
            FilterValue::PublishedText(want) => {
                self.op == FilterOp::Present || texts(&format_time(&call.published), want)
            }
            FilterValue::PublishedAt(at) => match self.op {
                FilterOp::Equals => call.published.timestamp() == at.timestamp(),
                FilterOp::GreaterThan => call.published > *at,
                _ => call.published < *at,
            },
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
    scope: &Scope,
    only: Option<&str>,
    q: &ListQuery,
    base_url: &str,
    path: &str,
) -> Collection<Entry> {
    let wanted = |c: &CallState| q.filter.as_ref().is_none_or(|f| f.matches(c));
    let (total, page): (usize, Vec<&CallState>) = match only {
        Some(id) => {
            let hit = t.call(id).filter(|c| scope.contains(c) && wanted(c));
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
    // startIndex comes from the client: it may be anything up to usize::MAX.
    let after = q.start_index.saturating_add(q.count);
    let next = (after < total).then(|| link(after));
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

    // Each bad query's code is checked through the router (`crate::api::tests`).
    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        let q = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::parse(&q).unwrap()
    }

    #[test]
    fn queries_parse_into_typed_values() {
        let d = q(&[]);
        assert_eq!(
            (d.count, d.start_index, d.sorted, d.descending),
            (20, 0, false, false)
        );
        assert_eq!(q(&[("count", "5000")]).count, 5000);
        assert!(q(&[("sortOrder", "descending")]).descending);
        assert_eq!(
            q(&[("fields", "id, phoneCallView")]).fields.unwrap().len(),
            2
        );
        let f = q(&[
            ("filterBy", "id"),
            ("filterValue", "ab"),
            ("filterOp", "startsWith"),
        ]);
        let f = f.filter.unwrap();
        assert_eq!(
            (f.op, f.value),
            (FilterOp::StartsWith, FilterValue::Id("ab".into()))
        );
        // A date filter's value is parsed once, here.
        let f = q(&[
            ("filterBy", "published"),
            ("filterValue", "2026-01-01T00:00:00+00:00"),
            ("filterOp", "greaterThan"),
        ]);
        assert!(matches!(
            f.filter.unwrap().value,
            FilterValue::PublishedAt(_)
        ));
        let f = q(&[
            ("filterBy", "published"),
            ("filterValue", "2026-01"),
            ("filterOp", "startsWith"),
        ]);
        assert!(matches!(
            f.filter.unwrap().value,
            FilterValue::PublishedText(_)
        ));
    }
}
