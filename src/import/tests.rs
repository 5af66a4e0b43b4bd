//! The import on what the sandbox PBX answers (and on a few endpoints it does not have).

use super::*;
use crate::config::{Directory, Settings};
use crate::inventory::{EndpointDetail, Mailbox};

fn phone(name: &str, callerid: &str, mailbox: &str) -> EndpointDetail {
    EndpointDetail {
        name: name.into(),
        callerid: callerid.into(),
        context: "phones".into(),
        mailboxes: [mailbox]
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        identify_by: "username".into(),
        contacts: vec![format!("sip:{name}@127.0.0.1:5{}", &name[name.len() - 3..])],
        ..EndpointDetail::default()
    }
}

/// What the sandbox answers to PJSIPShowEndpoint(s) and VoicemailUsersList.
fn sandbox() -> Found {
    let trunk = EndpointDetail {
        name: "trunk".into(),
        context: "from-trunk".into(),
        identify_by: "ip".into(),
        identify_matches: vec!["127.0.0.2/255.255.255.255".into()],
        contacts: vec!["sip:127.0.0.2:5060".into()],
        ..EndpointDetail::default()
    };
    let mailbox = |b: &str, n: &str| Mailbox {
        mailbox: b.into(),
        context: "0003".into(),
        full_name: n.into(),
    };
    Found {
        endpoints: vec![
            phone("0003_024", "\"Bob Brown\" <0003*024>", "024@0003"),
            phone("0003_210", "\"Alice Anders\" <0003*210>", "210@0003"),
            phone("0003_211", "\"Carol Chen\" <0003*211>", "211@0003"),
            phone("0003_212", "\"Dave Diaz\" <0003*212>", "212@0003"),
            trunk,
        ],
        mailboxes: vec![
            mailbox("210", "Alice Anders"),
            mailbox("024", "Bob Brown"),
            mailbox("211", "Carol Chen"),
            mailbox("212", "Dave Diaz"),
        ],
    }
}

#[test]
fn the_sandbox_reads_as_its_hand_written_directory() {
    let p = plan(&sandbox(), &Options::default());
    assert_eq!(p.org.code, "0003");
    assert_eq!(p.org.id, 3);
    assert_eq!(p.trunks.len(), 1);
    assert_eq!(p.users.len(), 4, "a user per phone");
    let toml = render(&p, &Settings::defaults().asterisk);
    let path = std::env::temp_dir().join(format!("uapid-import-{}.toml", std::process::id()));
    std::fs::write(&path, &toml).unwrap();
    let loaded = Settings::load(Some(&path));
    let _ = std::fs::remove_file(&path);
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let got = Directory::build(&loaded.directory).unwrap();
    let want = Directory::build(&Settings::defaults().directory).unwrap();
    for e in want.extensions.values().filter(|e| !e.endpoint.is_empty()) {
        let g = got.extension_by_endpoint(&e.endpoint).expect("imported");
        assert_eq!(
            (&g.number, &g.mailbox, &g.dial),
            (&e.number, &e.mailbox, &e.dial)
        );
    }
    assert!(got.is_trunk("trunk"));
    assert_eq!(got.apps.len(), 1);
}

#[test]
fn grouping_by_name_and_numbering_users() {
    let mut found = sandbox();
    found.endpoints[2].callerid = "\"Alice Anders\" <0003*211>".into();
    let opts = Options {
        group_by_name: true,
        first_user_id: 12,
        ..Options::default()
    };
    let p = plan(&found, &opts);
    assert_eq!(p.users.len(), 3);
    let user_of = |ep: &str| p.phones.iter().find(|x| x.endpoint == ep).unwrap().user;
    assert_eq!(user_of("0003_210"), user_of("0003_211"));
    assert_eq!(p.users.keys().next(), Some(&12));
}

#[test]
fn trunks_are_told_from_phones() {
    let opts = Options::default();
    let mut ep = phone("0003_210", "<0003*210>", "210@0003");
    assert!(!classify(&ep, &opts).0);
    ep.outbound_auth = "provider-auth".into();
    assert!(classify(&ep, &opts).0, "outbound_auth");
    let ep = phone("my-trunk-1", "", "");
    assert!(classify(&ep, &opts).0, "named like one");
    let mut ep = phone("office-gw", "", "");
    ep.contacts = vec!["sip:pbx.example.com".into()];
    assert!(classify(&ep, &opts).0, "a contact without a user part");
    let opts = Options {
        phones: vec!["office-gw".into()],
        ..Options::default()
    };
    assert!(!classify(&ep, &opts).0, "--phone overrides");
}

#[test]
fn numbers_come_from_caller_id_name_or_mailbox() {
    let found = Found {
        endpoints: vec![
            phone("alice", "\"Alice\" <201>", "201@office"),
            phone("bob-202", "Bob", ""),
            EndpointDetail {
                mailboxes: vec!["203".into()],
                ..phone("carol", "Carol", "")
            },
            phone("desk", "Desk", ""),
        ],
        mailboxes: vec![],
    };
    let p = plan(&found, &Options::default());
    let shorts: Vec<&str> = p.phones.iter().map(|x| x.short.as_str()).collect();
    assert_eq!(shorts, ["201", "202", "203"]);
    assert_eq!(p.phones[1].mailbox, None);
    assert_eq!(p.phones[2].mailbox.as_deref(), Some("203@default"));
    assert_eq!(p.org.code, "0001");
    assert_eq!(p.left_out.len(), 1, "desk has no number");
}
