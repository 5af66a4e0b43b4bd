//! `uapid directory import`: reads the PBX's PJSIP endpoints (with their caller ids and
//! mailboxes), voicemail boxes and trunk-like endpoints over AMI and writes a directory
//! in uapid's TOML to start from: one organization, a user per phone (or per caller id
//! name), an admin app, and comments on what to review.
//!
//! An endpoint is taken for a trunk when it is named by `--trunk`, identified by its
//! address (a `type = identify` section, or `identify_by` without `username`), has an
//! `outbound_auth`, is named like one (trunk, provider, carrier, gateway, itsp, pstn,
//! sbc), or every contact of it lacks a user part (`sip:host:port`: a server, not a
//! phone). `--phone` overrides all of that.

mod plan;
mod render;

pub use plan::{classify, plan, Found, Options, Phone, Plan};
pub use render::render;

use crate::config::AsteriskSettings;
use crate::doctor::link::DoctorAmi;
use crate::inventory::{self, ReadError, Refusal};

/// Reads the PBX in `a` and returns the directory as TOML.
pub async fn run(a: &AsteriskSettings, opts: &Options) -> Result<String, String> {
    let ami = DoctorAmi::connect(a)
        .await
        .map_err(|why| format!("AMI {}: {why}", a.ami_addr))?;
    let found = read(&ami).await?;
    let mut plan = plan(&found, opts);
    for p in &mut plan.phones {
        find_dial(&ami, &a.dial_context, p).await;
    }
    Ok(render(&plan, a))
}

/// Every endpoint with its details, and the voicemail boxes.
async fn read(ami: &DoctorAmi) -> Result<Found, String> {
    let why = |what: &str, e: ReadError| match e {
        ReadError::Refused(Refusal::Denied) => format!(
            "{what}: permission denied (the AMI user needs write class `system`; see uapid doctor)"
        ),
        e => format!("{what}: {e}"),
    };
    let names = inventory::endpoints(ami)
        .await
        .map_err(|e| why("PJSIPShowEndpoints", e))?;
    let mut endpoints = Vec::with_capacity(names.len());
    for n in names {
        let d = inventory::endpoint_detail(ami, &n.name)
            .await
            .map_err(|e| why("PJSIPShowEndpoint", e))?;
        endpoints.push(d);
    }
    let mailboxes = match inventory::mailboxes(ami).await {
        Ok(m) => m,
        // No voicemail on this PBX.
        Err(ReadError::Refused(Refusal::Unknown)) => Vec::new(),
        Err(e) => return Err(why("VoicemailUsersList", e)),
    };
    Ok(Found {
        endpoints,
        mailboxes,
    })
}

/// The first candidate number the dial context matches becomes the phone's `dial`
/// (left out when it is the short number); none matching is noted for review.
async fn find_dial(ami: &DoctorAmi, context: &str, p: &mut Phone) {
    for n in &p.dial_candidates {
        match inventory::dialplan(ami, context, Some(n)).await {
            Ok(lines) if !lines.is_empty() => {
                if *n != p.short {
                    p.dial = Some(n.clone());
                    p.notes.push(format!("the dial context knows it as {n}"));
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                p.notes
                    .push(format!("dial number not checked ({e}): review"));
                return;
            }
        }
    }
    p.notes.push(format!(
        "context {context} dials none of {}: review `dial`",
        p.dial_candidates.join(", ")
    ));
}

#[cfg(test)]
mod tests;
