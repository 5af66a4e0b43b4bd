//! The one place the benchmark names the library's listing and scope API: a tracker
//! built on the default directory, whose calls a page shows, and the page itself. When
//! that API changes, this file is what follows it.

use std::collections::HashMap;
use std::sync::Arc;

use uapid::api::list::{list, Collection, Entry, ListQuery};
use uapid::calls::{Scope as CallScope, Tracker};
use uapid::config::{Directory, Settings};

/// A tracker on the default settings' directory (the sandbox's accounts).
pub fn new_tracker() -> Tracker {
    Tracker::new(
        Arc::new(Directory::build(&Settings::defaults().directory).expect("directory")),
        "uapid",
    )
}

/// Whose calls a List page shows.
pub struct Scope(CallScope);

impl Scope {
    /// Every call: an admin's page.
    pub fn all() -> Scope {
        Scope(CallScope::All)
    }

    /// One user's calls.
    pub fn user(id: u64) -> Scope {
        Scope(CallScope::User(id))
    }
}

/// List pages with the default query (the first page, 20 calls).
pub struct Pages {
    query: ListQuery,
}

impl Default for Pages {
    fn default() -> Pages {
        Pages {
            query: ListQuery::parse(&HashMap::new()).expect("default query"),
        }
    }
}

impl Pages {
    /// A page of `scope`'s calls, built from `t` as uapid builds its answer to
    /// `GET /uapi/phoneCalls/@me/@self`.
    pub fn page(&self, t: &Tracker, scope: &Scope) -> Page {
        Page(list(
            t,
            &scope.0,
            None,
            &self.query,
            "http://127.0.0.1:8090",
            "/uapi/phoneCalls/@me/@self",
        ))
    }
}

/// A List page, built.
pub struct Page(Collection<Entry>);

impl Page {
    /// The page as JSON, the body uapid would send.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("serializes")
    }
}
