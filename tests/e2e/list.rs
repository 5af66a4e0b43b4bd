//! End to end, against the sandbox Asterisk with SIPp phones: what List PhoneCalls shows
//! for real calls, and who may see it.

use crate::helpers::*;
use crate::sipp::*;
use serde_json::Value;

const ADMIN_ALL: &str = "/uapi/phoneCalls/@me/@self";

fn is_dt(s: &Value) -> bool {
    // 2026-11-22T12:48:04+00:00
    s.as_str().is_some_and(|s| {
        s.len() == 25
            && chrono::DateTime::parse_from_rfc3339(s).is_ok()
            && (s.ends_with(":00") || s.contains('+') || s.contains('-'))
    })
}

#[tokio::test]
async fn extension_call_rings_then_answers_then_goes() {
    let app = TestApp::spawn().await;
    let admin = app.api.token_for("admin-app").await;
    let alice = app.api.token_for("alice-app").await;
    let bob = app.api.token_for("bob-app").await;

    let _bob_phone = phone_answering("024", 3000);
    let _call = dial_from_phone("210", "024", 1);

    // Ringing: 024's phone rings (3), 210 hears the other side ringing (4).
    let calls = app
        .api
        .wait_calls(ADMIN_ALL, &admin, "210 → 024 ringing", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("3")
        })
        .await;
    let call = &calls[0];
    assert_eq!(status_of(call, "0003*210").as_deref(), Some("4"), "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    assert!(
        id.len() >= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(call["extension"], "0003*210");
    assert_eq!(call["ownerId"], "3");
    assert_eq!(call["ownerName"], "Default Organization");
    assert!(is_dt(&call["published"]), "{call}");
    assert!(call.get("answered").is_none(), "not answered yet: {call}");
    let v210 = view(call, "0003*210").unwrap();
    let v024 = view(call, "0003*024").unwrap();
    assert_eq!(v210["id"], "01");
    assert_eq!(v024["id"], "02");
    for v in [v210, v024] {
        assert_eq!(v["flow"], "2");
        assert_eq!(v["source"], serde_json::json!(["0003*210"]));
        assert_eq!(v["destination"], serde_json::json!(["0003*024"]));
        assert!(
            v.get("parked").is_none() && v.get("onHold").is_none(),
            "null fields are left out: {v}"
        );
    }
    assert_eq!(v024["callerId"], "Alice Anders <210>");
    assert_eq!(
        call["link"]["self"].as_str().unwrap(),
        format!("{}/uapi/phoneCalls/12/0003*210/{id}", app.api.base)
    );

    // Both users see it from their side, @me/@self, short or full extension numbers.
    assert_eq!(
        app.api
            .calls("/uapi/phoneCalls/@me/@self", &alice)
            .await
            .len(),
        1
    );
    assert_eq!(
        app.api.calls("/uapi/phoneCalls/@me/024", &bob).await.len(),
        1
    );
    assert_eq!(
        app.api
            .calls("/uapi/phoneCalls/13/0003*024/", &bob)
            .await
            .len(),
        1
    );
    assert_eq!(
        app.api
            .calls("/uapi/phoneCalls/@me/211", &alice)
            .await
            .len(),
        0
    );

    // Answered: both on call (5), answered dates set.
    let calls = app
        .api
        .wait_calls(ADMIN_ALL, &admin, "210 ↔ 024 answered", |c| {
            c.len() == 1
                && status_of(&c[0], "0003*024").as_deref() == Some("5")
                && status_of(&c[0], "0003*210").as_deref() == Some("5")
        })
        .await;
    let call = &calls[0];
    assert_eq!(call["id"], id.as_str(), "same call id once answered");
    assert!(is_dt(&call["answered"]), "{call}");
    assert!(is_dt(&view(call, "0003*024").unwrap()["answered"]));
    assert_eq!(
        view(call, "0003*210").unwrap()["callerId"],
        "Bob Brown <024>"
    );

    // The call's own link lists it alone.
    let link = call["link"]["self"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.api.base)
        .to_string();
    let by_id = app.api.calls(&link, &alice).await;
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0]["id"], id.as_str());

    // Hung up: gone.
    hangup_all().await;
    app.api
        .wait_calls(ADMIN_ALL, &admin, "the call to go", |c| c.is_empty())
        .await;
    assert!(app.api.calls(&link, &alice).await.is_empty());
}

#[tokio::test]
async fn outbound_and_inbound_public_calls() {
    let app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;

    // Out: 210 calls a public number through the trunk.
    let _public = public_answering(200);
    let _out = dial_from_phone("210", "3235742879", 1);
    let calls = app
        .api
        .wait_calls(
            "/uapi/phoneCalls/@me/210",
            &alice,
            "outbound call answered",
            |c| c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("5"),
        )
        .await;
    let v = view(&calls[0], "0003*210").unwrap();
    assert_eq!(v["flow"], "4", "{v}");
    assert_eq!(v["source"], serde_json::json!(["0003*210"]));
    assert_eq!(v["destination"], serde_json::json!(["3235742879"]));
    assert_eq!(
        calls[0]["phoneCallView"].as_array().unwrap().len(),
        1,
        "only extensions have views"
    );
    hangup_all().await;
    app.api
        .wait_calls(
            "/uapi/phoneCalls/@me/210",
            &alice,
            "outbound call gone",
            |c| c.is_empty(),
        )
        .await;

    // In: a public caller rings 210.
    let _phone = phone_answering("210", 2000);
    let _in = dial_from_public("3235742879", "210");
    let calls = app
        .api
        .wait_calls(
            "/uapi/phoneCalls/@me/@self",
            &alice,
            "inbound call ringing",
            |c| c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("3"),
        )
        .await;
    let call = &calls[0];
    let v = view(call, "0003*210").unwrap();
    assert_eq!(v["flow"], "8", "{v}");
    assert_eq!(v["source"], serde_json::json!(["3235742879"]));
    assert_eq!(v["destination"], serde_json::json!(["0003*210"]));
    assert_eq!(
        call["extension"], "0003*210",
        "the called extension is charged"
    );
    assert!(
        v["callerId"].as_str().unwrap().contains("<3235742879>"),
        "{v}"
    );
    app.api
        .wait_calls(
            "/uapi/phoneCalls/@me/@self",
            &alice,
            "inbound call answered",
            |c| c.len() == 1 && status_of(&c[0], "0003*210").as_deref() == Some("5"),
        )
        .await;
    hangup_all().await;
    app.api
        .wait_calls(
            "/uapi/phoneCalls/@me/@self",
            &alice,
            "inbound call gone",
            |c| c.is_empty(),
        )
        .await;
}

#[tokio::test]
async fn simultaneous_calls_are_kept_apart_and_scoped() {
    let app = TestApp::spawn().await;
    let admin = app.api.token_for("admin-app").await;
    let org = app.api.token_for("org-app").await;
    let alice = app.api.token_for("alice-app").await;
    let bob = app.api.token_for("bob-app").await;

    let _p024 = phone_answering("024", 100);
    let _p212 = phone_answering("212", 100);
    let _c1 = dial_from_phone("210", "024", 1);
    let _c2 = dial_from_phone("211", "212", 1);
    let calls = app
        .api
        .wait_calls(ADMIN_ALL, &admin, "two answered calls", |c| {
            c.len() == 2
                && c.iter().all(|x| {
                    x["phoneCallView"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|v| v["status"] == "5")
                })
        })
        .await;
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    let with = |ext: &str| calls.iter().find(|c| view(c, ext).is_some()).unwrap()["id"].clone();
    assert_eq!(with("0003*210"), with("0003*024"));
    assert_eq!(with("0003*211"), with("0003*212"));
    assert_ne!(with("0003*210"), with("0003*212"));

    // Alice owns 210 and 211: both calls. Bob owns 024: one. The organization: both.
    assert_eq!(
        app.api
            .calls("/uapi/phoneCalls/@me/@self", &alice)
            .await
            .len(),
        2
    );
    let bobs = app.api.calls("/uapi/phoneCalls/@me/@self", &bob).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["id"], with("0003*024"));
    assert_eq!(
        app.api
            .calls("/uapi/phoneCalls/@me/@self", &org)
            .await
            .len(),
        2
    );
    let only211 = app.api.calls("/uapi/phoneCalls/@me/0003*211", &alice).await;
    assert_eq!(only211.len(), 1);
    assert_eq!(only211[0]["id"], with("0003*211"));
    // Bob cannot read Alice's call by id.
    let id211 = with("0003*211");
    let id211 = id211.as_str().unwrap();
    assert!(app
        .api
        .calls(&format!("/uapi/phoneCalls/@me/@self/{id211}"), &bob)
        .await
        .is_empty());

    // Paging and sorting over the live calls.
    let (st, page) = app
        .api
        .get(
            "/uapi/phoneCalls/@me/@self?count=1&sortOrder=descending",
            &admin,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(page["totalResults"], 2);
    assert_eq!(page["itemsPerPage"], 1);
    assert_eq!(page["sorted"], true);
    assert_eq!(page["entry"].as_array().unwrap().len(), 1);
    assert!(page["paging"]["next"]
        .as_str()
        .unwrap()
        .contains("startIndex=1"));
    let (_, filtered) = app
        .api
        .get(
            &format!("/uapi/phoneCalls/@me/@self?filterBy=id&filterValue={id211}"),
            &admin,
        )
        .await;
    assert_eq!(filtered["totalResults"], 1);
    assert_eq!(filtered["filtered"], true);
    let (_, slim) = app
        .api
        .get("/uapi/phoneCalls/@me/@self?fields=id,published", &admin)
        .await;
    let first = &slim["entry"][0];
    assert!(
        first.get("phoneCallView").is_none() && first.get("published").is_some(),
        "{first}"
    );

    hangup_all().await;
    app.api
        .wait_calls(ADMIN_ALL, &admin, "calls gone", |c| c.is_empty())
        .await;
}

#[tokio::test]
async fn authorization_and_errors() {
    let app = TestApp::spawn().await;
    let api = &app.api;

    // Token endpoint: a wrong secret, another grant type, no secret.
    for (form, status, code) in [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "alice-app"),
                ("client_secret", "nope"),
            ][..],
            401,
            "invalid_client",
        ),
        (
            &[("grant_type", "password"), ("client_id", "alice-app")],
            400,
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "alice-app"),
            ],
            400,
            "invalid_request",
        ),
    ] {
        let (st, body) = api.token_request(form).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (status, Some(code)),
            "token request {form:?} → {st} {body}"
        );
    }
    let alice = api.token_for("alice-app").await;

    // The query form of the token.
    let resp = api
        .http
        .get(format!(
            "{}/uapi/phoneCalls/@me/@self?accessRequestToken={alice}",
            api.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Missing and bad tokens; someone else's extension or user; unknown ones; bad ids and
    // queries; no such path.
    api.assert_errors(&[
        (Req::get(ADMIN_ALL), 401, "access_denied"),
        (
            Req::get(ADMIN_ALL).token("forged-token"),
            401,
            "access_denied",
        ),
        (
            Req::get("/uapi/phoneCalls/@me/024").token(&alice),
            403,
            "permission_denied",
        ),
        (
            Req::get("/uapi/phoneCalls/13/@self").token(&alice),
            403,
            "permission_denied",
        ),
        (
            Req::get("/uapi/phoneCalls/777/@self").token(&alice),
            400,
            "user_invalid",
        ),
        (
            Req::get("/uapi/phoneCalls/@me/0003*999").token(&alice),
            400,
            "extension_invalid",
        ),
        (
            Req::get("/uapi/phoneCalls/@me/@self/not-an-id!").token(&alice),
            400,
            "pc_phonecall_invalid",
        ),
        (
            Req::get(format!("{ADMIN_ALL}?count=0")).token(&alice),
            400,
            "count_invalid",
        ),
        (
            Req::get(format!("{ADMIN_ALL}?startIndex=x")).token(&alice),
            400,
            "start_index_invalid",
        ),
        (
            Req::get(format!("{ADMIN_ALL}?filterBy=nope&filterValue=1")).token(&alice),
            400,
            "filter_invalid",
        ),
        (
            Req::get(format!("{ADMIN_ALL}?sortOrder=sideways")).token(&alice),
            400,
            "sort_order_invalid",
        ),
        (
            Req::get(format!("{ADMIN_ALL}?fields=nope")).token(&alice),
            400,
            "fields_invalid",
        ),
        (
            Req::get("/uapi/nothing-here").token(&alice),
            404,
            "resource_not_found",
        ),
    ])
    .await;

    // Health says both links are up.
    let resp = api
        .http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.unwrap();
    assert_eq!(
        (h["ari"].as_bool(), h["ami"].as_bool()),
        (Some(true), Some(true))
    );
}

/// A test of its own, so the error table above does not race a 1 s token.
#[tokio::test]
async fn tokens_expire() {
    let app = TestApp::spawn_with(|s| s.token_ttl_secs = 1).await;
    let api = &app.api;
    let (st, body) = api
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "alice-app"),
            ("client_secret", "alice-secret"),
            ("type", "unifiedapi"),
        ])
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["expires_in"], 1);
    let alice = body["access_token"].as_str().unwrap().to_string();
    eventually("the 1 s token to expire", || async {
        let (st, body) = api.get(ADMIN_ALL, &alice).await;
        (st == 401).then_some(body)
    })
    .await;
}

#[tokio::test]
async fn uapid_restart_mid_call_keeps_the_call_id() {
    let mut app = TestApp::spawn().await;
    let alice = app.api.token_for("alice-app").await;
    let _p = phone_answering("024", 100);
    let _c = dial_from_phone("210", "024", 1);
    let before = app
        .api
        .wait_calls("/uapi/phoneCalls/@me/@self", &alice, "call answered", |c| {
            c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
        })
        .await;

    // A new uapid learns the call from Asterisk's snapshot: same id, same shape.
    app.restart_uapid().await;
    let alice = app.api.token_for("alice-app").await;
    let after = app.api.calls("/uapi/phoneCalls/@me/@self", &alice).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["published"], before[0]["published"]);
    assert_eq!(
        after[0]["answered"], before[0]["answered"],
        "answer time comes back from CDR(answer)"
    );
    assert_eq!(status_of(&after[0], "0003*210").as_deref(), Some("5"));
    assert_eq!(view(&after[0], "0003*024"), view(&before[0], "0003*024"));
    hangup_all().await;
    app.api
        .wait_calls("/uapi/phoneCalls/@me/@self", &alice, "call gone", |c| {
            c.is_empty()
        })
        .await;
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("uapid-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls = uapid::config::TlsSettings {
        cert: cert.clone(),
        key,
    };
    let app = TestApp::spawn_with(|s| s.tls = Some(tls)).await;
    let addr = app.addr();
    // A UAPI client over HTTPS, trusting our certificate: token, then a listing.
    let curl = |args: Vec<String>| {
        let cert = cert.clone();
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-s", "--max-time", "10", "--cacert"])
                .arg(&cert)
                .args(args)
                .output()
                .await
                .expect("curl");
            (
                out.status.code(),
                serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
            )
        }
    };
    let (_, tok) = curl(vec![
        format!("https://{addr}/oauth/token.php"),
        "-d".into(),
        "grant_type=client_credentials&client_id=alice-app&client_secret=alice-secret".into(),
    ])
    .await;
    let token = tok["access_token"]
        .as_str()
        .expect("token over https")
        .to_string();
    let (_, list) = curl(vec![
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        format!("https://{addr}/uapi/phoneCalls/@me/@self"),
    ])
    .await;
    assert!(list["entry"].is_array(), "{list}");
    // Plain HTTP on the TLS port gets no answer from uapid.
    let plain = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("http://{addr}/health")])
        .output()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"ari\""));
    let _ = std::fs::remove_dir_all(&dir);
}
