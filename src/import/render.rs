//! The plan as uapid's TOML, with comments on where each entry came from.

use std::fmt::Write as _;

use super::plan::Plan;
use crate::config::AsteriskSettings;

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn random_secret() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        return "change-me".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn header(plan: &Plan, a: &AsteriskSettings, out: &mut String) {
    let _ = writeln!(
        out,
        "# uapid's directory, read from the PBX at {} by `uapid directory import`.\n\
         # A start, to review before use:\n\
         # - the organization's id, code and name ({});\n\
         # - users: one per phone unless --group-by-name was given; their names come\n\
         #   from the caller ids; give them the ids your UAPI apps know;\n\
         # - kinds: every endpoint that is not a trunk became a phone_terminal;\n\
         # - trunks: endpoints identified by address, with an outbound_auth, named like\n\
         #   a trunk, or whose contacts have no user part (--trunk / --phone override);\n\
         # - the lines marked \"review\" below.\n\
         # Arrays in this file replace the built-in ones: organizations, users,\n\
         # extensions, trunks and apps are all here. Conference rooms and other kinds\n\
         # cannot be read from PJSIP: add them by hand.",
        a.ami_addr, plan.org.why
    );
    let contexts: std::collections::BTreeSet<&str> =
        plan.phones.iter().map(|p| p.context.as_str()).collect();
    if contexts.len() == 1 && !contexts.contains(a.dial_context.as_str()) {
        let ctx = contexts.iter().next().copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "#\n# The phones' calls start in context {ctx}; uapid dials from {} \
             (asterisk.dial_context): review.",
            a.dial_context
        );
    }
    for (ep, why) in &plan.left_out {
        let _ = writeln!(out, "# Left out: endpoint {ep}: {why}.");
    }
}

/// The directory as TOML, to load with `uapid --config FILE`.
pub fn render(plan: &Plan, a: &AsteriskSettings) -> String {
    let mut out = String::new();
    header(plan, a, &mut out);
    let o = &plan.org;
    let _ = writeln!(
        out,
        "\n[[directory.organizations]]\nid = {}\ncode = {}\nname = {}  # review",
        o.id,
        quoted(&o.code),
        quoted(&o.name)
    );
    for (id, name) in &plan.users {
        let _ = writeln!(
            out,
            "\n[[directory.users]]\nid = {id}\nname = {}\norganization = {}",
            quoted(name),
            o.id
        );
    }
    for p in &plan.phones {
        let _ = writeln!(out, "\n# {}: {}.", p.endpoint, p.notes.join("; "));
        let _ = writeln!(
            out,
            "[[directory.extensions]]\nnumber = {}\nuser = {}\nkind = \"phone_terminal\"\nendpoint = {}",
            quoted(&format!("{}*{}", o.code, p.short)),
            p.user,
            quoted(&p.endpoint)
        );
        if let Some(m) = &p.mailbox {
            let _ = writeln!(out, "mailbox = {}", quoted(m));
        }
        if let Some(d) = &p.dial {
            let _ = writeln!(out, "dial = {}", quoted(d));
        }
    }
    for (ep, why) in &plan.trunks {
        let _ = writeln!(
            out,
            "\n# {ep}: a trunk: {why}.\n[[directory.trunks]]\nendpoint = {}",
            quoted(ep)
        );
    }
    let _ = writeln!(
        out,
        "\n# One OAuth app that sees every call; add organization:<id> and user:<id> apps.\n\
         [[directory.apps]]\nclient_id = \"admin-app\"\nsecret = {}\naccount = \"admin\"",
        quoted(&random_secret())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quoted("Alice"), "\"Alice\"");
        assert_eq!(quoted("A \"B\" \\ C"), "\"A \\\"B\\\" \\\\ C\"");
        assert_eq!(quoted("a\nb\u{1}"), "\"a\\nb\\u0001\"");
    }
}
