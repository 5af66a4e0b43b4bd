//! From what the PBX has to a directory: which endpoints are trunks, each phone's
//! number, user and mailbox. Pure: the tests feed it what a PBX answered.

use std::collections::{BTreeMap, HashMap};

use crate::inventory::{split_callerid, EndpointDetail, Mailbox};

/// How the import is told to read the PBX.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The organization's id, code and name (default: the code found in the phones'
    /// numbers, its value as the id, "Organization <code>").
    pub org_id: Option<u64>,
    pub org_code: Option<String>,
    pub org_name: Option<String>,
    /// Endpoints to take as trunks, or as phones, whatever they look like.
    pub trunks: Vec<String>,
    pub phones: Vec<String>,
    /// Endpoints with the same caller id name belong to one user.
    pub group_by_name: bool,
    /// The first user id handed out.
    pub first_user_id: u64,
}

/// What the PBX answered.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub endpoints: Vec<EndpointDetail>,
    pub mailboxes: Vec<Mailbox>,
}

/// Names that say "trunk" (lower case, anywhere in the endpoint's name).
const TRUNK_WORDS: &[&str] = &[
    "trunk", "provider", "carrier", "gateway", "itsp", "pstn", "sbc",
];

/// Whether an endpoint leads to the public network, and why it looks so (or not).
pub fn classify(ep: &EndpointDetail, opts: &Options) -> (bool, String) {
    if opts.trunks.contains(&ep.name) {
        return (true, "named by --trunk".into());
    }
    if opts.phones.contains(&ep.name) {
        return (false, "named by --phone".into());
    }
    if let Some(m) = ep.identify_matches.first() {
        return (true, format!("identified by its address ({m})"));
    }
    if !ep.identify_by.is_empty() && !ep.identify_by.contains("username") {
        return (true, format!("identify_by = {}", ep.identify_by));
    }
    if !ep.outbound_auth.is_empty() {
        return (true, "authenticates to its far end (outbound_auth)".into());
    }
    let lower = ep.name.to_ascii_lowercase();
    if let Some(w) = TRUNK_WORDS.iter().find(|w| lower.contains(*w)) {
        return (true, format!("named like one ({w})"));
    }
    if !ep.contacts.is_empty() && ep.contacts.iter().all(|c| !c.contains('@')) {
        return (
            true,
            format!("its contact has no user part ({})", ep.contacts[0]),
        );
    }
    (
        false,
        "a phone: identified by name, no outbound auth, no trunk-like name".into(),
    )
}

/// A number and where it came from: (organization code if the number says, short).
fn number_from(ep: &EndpointDetail) -> Option<(Option<String>, String, &'static str)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let coded = |s: &str, sep: char| {
        s.split_once(sep)
            .filter(|(c, n)| digits(c) && digits(n))
            .map(|(c, n)| (Some(c.to_string()), n.to_string()))
    };
    let (_, cid) = split_callerid(&ep.callerid);
    if let Some((c, n)) = coded(&cid, '*') {
        return Some((c, n, "caller id"));
    }
    if let Some((c, n)) = coded(&ep.name, '_').or_else(|| coded(&ep.name, '*')) {
        return Some((c, n, "endpoint name"));
    }
    if digits(&cid) && cid.len() <= 6 {
        return Some((None, cid, "caller id"));
    }
    let tail: String = ep
        .name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.len() >= 2 {
        return Some((None, tail, "endpoint name"));
    }
    let bx = ep.mailboxes.first()?.split('@').next()?.to_string();
    digits(&bx).then_some((None, bx, "mailbox"))
}

/// One phone terminal to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub endpoint: String,
    pub short: String,
    pub user: u64,
    pub mailbox: Option<String>,
    /// The number the dial context knows it by, when not `short`.
    pub dial: Option<String>,
    /// Numbers worth trying in the dial context, best first.
    pub dial_candidates: Vec<String>,
    /// Context its own calls start in.
    pub context: String,
    /// Where its number, user and mailbox came from; what to review.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: u64,
    pub code: String,
    pub name: String,
    pub why: String,
}

/// The directory to write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub org: Org,
    /// id → name.
    pub users: BTreeMap<u64, String>,
    pub phones: Vec<Phone>,
    /// Endpoint and why it is taken for a trunk.
    pub trunks: Vec<(String, String)>,
    /// Endpoints left out, and why.
    pub left_out: Vec<(String, String)>,
}

/// Reads `found` into a plan. Phones come in order of their short numbers.
pub fn plan(found: &Found, opts: &Options) -> Plan {
    let mut trunks = Vec::new();
    let mut left_out = Vec::new();
    let mut numbered: Vec<(&EndpointDetail, Option<String>, String, &str)> = Vec::new();
    for ep in &found.endpoints {
        match classify(ep, opts) {
            (true, why) => trunks.push((ep.name.clone(), why)),
            (false, _) => match number_from(ep) {
                Some((code, short, from)) => numbered.push((ep, code, short, from)),
                None => left_out.push((
                    ep.name.clone(),
                    "no number in its caller id, name or mailbox".into(),
                )),
            },
        }
    }
    numbered.sort_by(|a, b| (a.2.len(), &a.2).cmp(&(b.2.len(), &b.2)));
    let org = organization(&numbered, opts);
    let mut users = BTreeMap::new();
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let mut next_user = opts.first_user_id.max(1);
    let mut phones: Vec<Phone> = Vec::new();
    for (ep, code, short, from) in numbered {
        if phones.iter().any(|p| p.short == short) {
            left_out.push((
                ep.name.clone(),
                format!("its number {short} is another endpoint's too"),
            ));
            continue;
        }
        let mut notes = vec![format!("number {short} from its {from}")];
        if code.as_deref().is_some_and(|c| c != org.code) {
            notes.push(format!(
                "its number says organization {}: review",
                code.unwrap_or_default()
            ));
        }
        let mailbox = mailbox_of(ep, &short, &found.mailboxes, &mut notes);
        let name = user_name(ep, mailbox.as_deref(), &found.mailboxes);
        let user = match by_name.get(&name).filter(|_| opts.group_by_name) {
            Some(&id) => id,
            None => {
                let id = next_user;
                next_user += 1;
                users.insert(id, name.clone());
                by_name.insert(name, id);
                id
            }
        };
        let (_, cid) = split_callerid(&ep.callerid);
        let mut dial_candidates = vec![short.clone()];
        if !cid.is_empty() && cid != short {
            dial_candidates.push(cid);
        }
        phones.push(Phone {
            endpoint: ep.name.clone(),
            short,
            user,
            mailbox,
            dial: None,
            dial_candidates,
            context: ep.context.clone(),
            notes,
        });
    }
    Plan {
        org,
        users,
        phones,
        trunks,
        left_out,
    }
}

fn organization(
    numbered: &[(&EndpointDetail, Option<String>, String, &str)],
    opts: &Options,
) -> Org {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, code, _, _) in numbered {
        if let Some(c) = code {
            *counts.entry(c.as_str()).or_default() += 1;
        }
    }
    let found = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, _)| c.to_string());
    let (code, why) = match (&opts.org_code, found) {
        (Some(c), _) => (c.clone(), "code from --org-code".to_string()),
        (None, Some(c)) => (c, "code found in the phones' numbers".to_string()),
        (None, None) => ("0001".to_string(), "no code found: 0001 chosen".to_string()),
    };
    let id = opts
        .org_id
        .or_else(|| code.parse::<u64>().ok().filter(|n| *n > 0))
        .unwrap_or(1);
    let name = opts
        .org_name
        .clone()
        .unwrap_or_else(|| format!("Organization {code}"));
    Org {
        id,
        code,
        name,
        why,
    }
}

/// The endpoint's MWI mailbox, else the one voicemail box numbered like the phone.
fn mailbox_of(
    ep: &EndpointDetail,
    short: &str,
    boxes: &[Mailbox],
    notes: &mut Vec<String>,
) -> Option<String> {
    if let Some(m) = ep.mailboxes.iter().find(|m| !m.is_empty()) {
        let address = if m.contains('@') {
            m.clone()
        } else {
            format!("{m}@default")
        };
        if !boxes.is_empty() && !boxes.iter().any(|b| b.address() == address) {
            notes.push(format!(
                "its mailbox {address} is not in voicemail.conf: review"
            ));
        } else {
            notes.push("mailbox from the endpoint's `mailboxes`".into());
        }
        return Some(address);
    }
    let mut same = boxes.iter().filter(|b| b.mailbox == short);
    match (same.next(), same.next()) {
        (Some(b), None) => {
            notes.push(format!(
                "mailbox {} matched by its number: review",
                b.address()
            ));
            Some(b.address())
        }
        _ => None,
    }
}

fn user_name(ep: &EndpointDetail, mailbox: Option<&str>, boxes: &[Mailbox]) -> String {
    let (name, _) = split_callerid(&ep.callerid);
    if !name.is_empty() {
        return name;
    }
    mailbox
        .and_then(|m| boxes.iter().find(|b| b.address() == m))
        .map(|b| b.full_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ep.name.clone())
}
