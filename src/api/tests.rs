//! The router driven in-process (no PBX): authentication and every 4xx answer, each a
//! row of a table: method, path, who asks, body → status and UAPI code. uapid's links
//! point at a closed port, so nothing here reaches Asterisk; the requests that would
//! are those answered before any PBX step (bad input, unknown calls, nothing to do).
//! What needs a real socket (timeouts, the connection cap, hyper's own answers) is in
//! `tests/e2e/tokens.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::auth::{unix_now, Tokens};
use super::throttle::{Throttle, ThrottleLimits};
use super::{router, AppState};
use crate::actions::{Actions, Pbx, PbxNames};
use crate::asterisk::ami::AmiClient;
use crate::calls::Calls;
use crate::config::Directory;
use crate::config::{DirectoryConfig, Limits, Secret, Settings};

const KEY: &[u8] = b"the token key of the router tests";

/// The router of a uapid whose PBX is unreachable.
fn app() -> Router {
    app_with(Settings::defaults().directory, Limits::default())
}

/// The same, with its own directory and limits.
fn app_with(directory: DirectoryConfig, limits: Limits) -> Router {
    let s = Settings::defaults();
    let mut a = s.asterisk.clone();
    a.ami_addr = "127.0.0.1:9".into();
    a.ari_url = "http://127.0.0.1:9".into();
    let dir = Arc::new(Directory::build(&directory).unwrap());
    let (calls, _inputs, _task) = Calls::spawn(dir.clone(), &a.app);
    let (ami, _task) = AmiClient::spawn(a.ami(&[]), tokio::sync::mpsc::unbounded_channel().0);
    let pbx = Pbx::new(vec![ami], a.ari_rest(), PbxNames::from_settings(&a), vec![]);
    let actions = Arc::new(Actions::new(pbx, calls.clone(), dir.clone()));
    router(Arc::new(AppState {
        tokens: Tokens::new(KEY, Duration::from_secs(60), &dir),
        throttle: Throttle::new(ThrottleLimits {
            per_client: limits.token_failures_per_client,
            per_address: limits.token_failures_per_address,
            window: Duration::from_secs(limits.token_failure_window_secs),
        }),
        limits,
        directory: dir,
        calls,
        base_url: "http://uapid.test".into(),
        actions,
    }))
}

/// The address requests come from unless said otherwise.
const CLIENT: &str = "192.0.2.1:40000";

/// Sends one request → the response.
async fn raw(app: &Router, req: Request<Body>) -> Response {
    let mut req = req;
    if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
        req.extensions_mut()
            .insert(ConnectInfo(CLIENT.parse::<SocketAddr>().unwrap()));
    }
    app.clone().oneshot(req).await.unwrap()
}

/// A response's status and JSON body (Null when there is none).
async fn parts(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sends one request → (status, JSON body; Null when empty).
async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if uri.starts_with("/oauth") {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    parts(raw(app, req.body(Body::from(body.to_string())).unwrap()).await).await
}

/// A token request from `addr` → (status, body, Retry-After).
async fn token_from(app: &Router, addr: &str, form: &str) -> (u16, Value, Option<String>) {
    let mut req = Request::builder()
        .method("POST")
        .uri("/oauth/token.php")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    let resp = raw(app, req).await;
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (st, body) = parts(resp).await;
    (st, body, retry)
}

fn credentials(client: &str, secret: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id={client}&client_secret={secret}&type=unifiedapi"
    )
}

async fn token(app: &Router, client: &str) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={client}&client_secret={}&type=unifiedapi",
        client.replace("-app", "-secret")
    );
    let (st, body) = send(app, "POST", "/oauth/token.php", None, &form).await;
    assert_eq!(st, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// Walks a table of requests made with `token`, checking each answer's status and code.
async fn check(app: &Router, token: Option<&str>, rows: &[(&str, &str, Value, u16, &str)]) {
    for (method, uri, body, status, code) in rows {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (st, resp) = send(app, method, uri, token, &text).await;
        assert_eq!(
            (st, resp["error"]["code"].as_str().unwrap_or("")),
            (*status, *code),
            "{method} {uri} {body} → {resp}"
        );
        assert!(
            resp["error"]["message"].is_string(),
            "{method} {uri}: {resp}"
        );
    }
}

#[tokio::test]
async fn tokens_are_issued_to_known_apps_only() {
    let app = app();
    let form = |g: &str, id: &str, secret: &str, kind: &str| {
        format!("grant_type={g}&client_id={id}&client_secret={secret}&type={kind}")
    };
    let rows = [
        (
            form("client_credentials", "alice-app", "wrong", "unifiedapi"),
            401,
            "invalid_client",
        ),
        (
            form("client_credentials", "nobody", "alice-secret", "unifiedapi"),
            401,
            "invalid_client",
        ),
        (
            form("password", "alice-app", "alice-secret", "unifiedapi"),
            400,
            "unsupported_grant_type",
        ),
        (
            form("client_credentials", "alice-app", "alice-secret", "other"),
            400,
            "invalid_request",
        ),
        (
            "client_id=alice-app&client_secret=alice-secret".into(),
            400,
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&client_id=alice-app".into(),
            400,
            "invalid_request",
        ),
    ];
    for (form, status, code) in rows {
        let (st, body) = send(&app, "POST", "/oauth/token.php", None, &form).await;
        assert_eq!(
            (st, body["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{form}"
        );
    }
    let t = token(&app, "alice-app").await;
    let (st, body) = send(&app, "GET", "/uapi/phoneCalls/@me/@self", Some(&t), "").await;
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let uri = format!("/uapi/phoneCalls/@me/@self/?accessRequestToken={t}");
    assert_eq!(
        send(&app, "GET", &uri, None, "").await.0,
        200,
        "the query form of the token"
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let app = app();
    let rows = [(
        "GET",
        "/uapi/phoneCalls/@me/@self",
        Value::Null,
        401,
        "access_denied",
    )];
    check(&app, None, &rows).await;
    check(&app, Some("forged-token-0123456789"), &rows).await;
    let (st, body) = send(
        &app,
        "GET",
        "/uapi/phoneCalls/@me/@self?accessRequestToken=",
        None,
        "",
    )
    .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("access_denied"))
    );
    let req = Request::builder()
        .uri("/uapi/phoneCalls/@me/@self")
        .header("authorization", "Basic YTpi")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn paths_and_list_queries() {
    let app = app();
    let t = token(&app, "alice-app").await;
    let n = Value::Null;
    let rows = [
        (
            "GET",
            "/uapi/phoneCalls/999/@self",
            n.clone(),
            400,
            "user_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/bob/@self",
            n.clone(),
            400,
            "user_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/999",
            n.clone(),
            400,
            "extension_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/21x",
            n.clone(),
            400,
            "extension_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/0003*024",
            n.clone(),
            403,
            "permission_denied",
        ),
        (
            "GET",
            "/uapi/phoneCalls/13/@self",
            n.clone(),
            403,
            "permission_denied",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self/a.b",
            n.clone(),
            400,
            "pc_phonecall_invalid",
        ),
        ("GET", "/uapi/nothing", n.clone(), 404, "resource_not_found"),
        (
            "POST",
            "/uapi/phoneCalls/@me/@self",
            n.clone(),
            405,
            "request_not_implemented",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?count=0",
            n.clone(),
            400,
            "count_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?count=5001",
            n.clone(),
            400,
            "count_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?count=x",
            n.clone(),
            400,
            "count_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?startIndex=-1",
            n.clone(),
            400,
            "start_index_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?filterBy=name&filterValue=x",
            n.clone(),
            400,
            "filter_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?filterBy=id",
            n.clone(),
            400,
            "filter_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?filterBy=published&filterOp=greaterThan&filterValue=soon",
            n.clone(),
            400,
            "filter_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?sortOrder=sideways",
            n.clone(),
            400,
            "sort_order_invalid",
        ),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self?fields=id,secret",
            n.clone(),
            400,
            "fields_invalid",
        ),
    ];
    check(&app, Some(&t), &rows).await;
}

#[tokio::test]
async fn every_bad_action_body_gets_its_code() {
    let app = app();
    let t = token(&app, "alice-app").await;
    let call = "/uapi/phoneCalls/@me/0003*210/0123456789abcdef0123";
    let put = |body: Value, status: u16, code: &'static str| ("PUT", call, body, status, code);
    let rows = [
        put(
            json!({"action":"Park","maxInParking":"9","phoneCallViewId":"01"}),
            400,
            "pc_parktimeout_invalid",
        ),
        put(
            json!({"action":"Park","maxInParking":"3601","phoneCallViewId":"01"}),
            400,
            "pc_parktimeout_invalid",
        ),
        put(
            json!({"action":"Park","maxInParking":"soon","phoneCallViewId":"01"}),
            400,
            "pc_parktimeout_invalid",
        ),
        put(
            json!({"action":"Park","phoneCallViewId":"x1"}),
            400,
            "pc_phonecallview_invalid",
        ),
        put(
            json!({"action":"Park","phoneCallViewId":"00"}),
            400,
            "pc_phonecallview_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"0"}),
            400,
            "pc_timeout_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"0003*024","waitForPickup":"-3"}),
            400,
            "pc_timeout_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John"}),
            400,
            "pc_callerid_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"0003*024","callerId":"John <abc>"}),
            400,
            "pc_callerid_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"0003*999"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(
            json!({"action":"UnPark","sendCallTo":"3235742879"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(json!({"action":"PickUp"}), 400, "pc_sendcallto_invalid"),
        put(
            json!({"action":"Transfer","sendCallTo":"abc","transferFromNumber":"0003*024"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(
            json!({"action":"Transfer","sendCallTo":"0003*999","transferFromNumber":"0003*024"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(
            json!({"action":"Transfer","sendCallTo":"3235742879"}),
            400,
            "pc_transfer_from_number_invalid",
        ),
        put(
            json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"x"}),
            400,
            "pc_transfer_from_number_invalid",
        ),
        put(
            json!({"action":"Transfer","sendCallTo":"3235742879","transferFromNumber":"0003*024","transferNumber":"me"}),
            400,
            "pc_transfer_number_invalid",
        ),
        put(
            json!({"action":"TransferToVoicemail","sendCallTo":"3235742879"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(json!({"action":"Dance"}), 400, "pc_action_invalid"),
        put(json!({"nothing":1}), 400, "pc_action_invalid"),
        put(json!([1, 2]), 400, "request_invalid"),
        put(json!("not an object"), 400, "request_invalid"),
        put(
            json!({"action":"Whisper","sendCallTo":"024","private":"2"}),
            400,
            "pc_private_invalid",
        ),
        put(
            json!({"action":"Monitor","sendCallTo":"0003*999"}),
            400,
            "pc_sendcallto_invalid",
        ),
        put(json!({"action":"BargeIn"}), 400, "pc_sendcallto_invalid"),
        put(
            json!({"action":"StartRecording","format":"mp3"}),
            400,
            "pc_format_invalid",
        ),
        put(
            json!({"action":"StopRecording","phoneCallViewId":"x"}),
            400,
            "pc_phonecallview_invalid",
        ),
        put(
            json!({"action":"Whisper","sendCallTo":"024"}),
            400,
            "pc_phonecall_invalid",
        ),
        // A well-formed action on a call that does not exist (or is out of reach).
        put(
            json!({"action":"OnHold","phoneCallViewId":"01"}),
            400,
            "pc_phonecall_invalid",
        ),
        (
            "PUT",
            "/uapi/phoneCalls/@me/0003*024",
            json!({"action":"OnHold"}),
            403,
            "permission_denied",
        ),
    ];
    check(&app, Some(&t), &rows).await;
    let (st, resp) = send(&app, "PUT", call, Some(&t), "{not json").await;
    assert_eq!(
        (st, resp["error"]["code"].as_str()),
        (400, Some("request_invalid"))
    );
    // The all-calls form with no call to act on: 200 with an empty array.
    let (st, body) = send(
        &app,
        "PUT",
        "/uapi/phoneCalls/@me/0003*210",
        Some(&t),
        r#"{"action":"OffHold"}"#,
    )
    .await;
    assert_eq!((st, body), (200, json!([])));
}

#[tokio::test]
async fn bad_hang_ups_and_bad_calls_to_create() {
    let app = app();
    let t = token(&app, "alice-app").await;
    let simple = "/uapi/phoneCalls/@me/simple";
    let create = |v: Value| v;
    let view = |src: &str, dst: &str| json!({"extension":"0003*210","phoneCallView":[{"source":[src],"destination":[dst]}]});
    let rows = [
        (
            "DELETE",
            "/uapi/phoneCalls/@me/0003*210?phoneNumber=abc",
            Value::Null,
            400,
            "phone_number_invalid",
        ),
        (
            "DELETE",
            "/uapi/phoneCalls/@me/0003*210/x.y",
            Value::Null,
            400,
            "pc_phonecall_invalid",
        ),
        (
            "POST",
            simple,
            create(json!({"phoneCallView":[{}]})),
            400,
            "extension_invalid",
        ),
        (
            "POST",
            simple,
            create(json!({"extension":"0003*024"})),
            403,
            "permission_denied",
        ),
        (
            "POST",
            simple,
            view("0003*211", "3235742879"),
            400,
            "pc_source_invalid",
        ),
        (
            "POST",
            simple,
            create(json!({"extension":"0003*210"})),
            400,
            "pc_destination_invalid",
        ),
        (
            "POST",
            simple,
            view("0003*210", "abc"),
            400,
            "pc_destination_invalid",
        ),
        (
            "POST",
            simple,
            view("0003*210", "210"),
            400,
            "pc_destination_invalid",
        ),
        (
            "POST",
            simple,
            json!({"extension":"0003*210","phoneCallView":[{"destination":["3235742879"],"callerId":"x"}]}),
            400,
            "pc_callerid_invalid",
        ),
        (
            "POST",
            "/uapi/phoneCalls/@me/simple?waitForPickup=0",
            view("0003*210", "024"),
            400,
            "pc_timeout_invalid",
        ),
        (
            "POST",
            "/uapi/phoneCalls/@me/simple?callDuration=0",
            view("0003*210", "024"),
            400,
            "pc_callduration_invalid",
        ),
    ];
    check(&app, Some(&t), &rows).await;
    // Nothing to hang up, and a call already gone: 200 with an empty array.
    for path in [
        "/uapi/phoneCalls/@me/0003*210",
        "/uapi/phoneCalls/@me/0003*210/",
        "/uapi/phoneCalls/@me/0003*210/0123456789abcdef0123",
        "/uapi/phoneCalls/@me/@self/0123456789abcdef0123/",
    ] {
        let (st, body) = send(&app, "DELETE", path, Some(&t), "").await;
        assert_eq!((st, &body), (200, &json!([])), "DELETE {path}");
    }
}

#[tokio::test]
async fn health_says_the_pbx_is_unreachable() {
    let app = app();
    let (st, body) = send(&app, "GET", "/health", None, "").await;
    assert_eq!(
        (st, &body["ari"], &body["ami"]),
        (503, &json!(false), &json!(false)),
        "{body}"
    );
}

#[tokio::test]
async fn tokens_outlive_the_instance_but_not_a_changed_secret() {
    let first = app();
    let alice = token(&first, "alice-app").await;
    let bob = token(&first, "bob-app").await;
    assert!(
        alice.len() >= 10
            && alice
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
        "the format the real client checks: {alice}"
    );
    let list = |app: Router, t: String| async move {
        let (st, body) = send(&app, "GET", "/uapi/phoneCalls/@me/@self/", Some(&t), "").await;
        (st, body["error"]["code"].as_str().unwrap_or("").to_string())
    };
    // Another instance with the same key: a restart, or a second node.
    assert_eq!(list(app(), alice.clone()).await, (200, String::new()));

    let mut changed = Settings::defaults().directory;
    let a = changed
        .apps
        .iter_mut()
        .find(|a| a.client_id == "alice-app")
        .unwrap();
    a.secret = Secret::new("alice-new-secret");
    let changed = app_with(changed, Limits::default());
    assert_eq!(
        list(changed.clone(), alice.clone()).await,
        (401, "access_denied".into())
    );
    assert_eq!(list(changed, bob.clone()).await, (200, String::new()));

    let mut removed = Settings::defaults().directory;
    removed.apps.retain(|a| a.client_id != "bob-app");
    let removed = app_with(removed, Limits::default());
    assert_eq!(
        list(removed.clone(), bob).await,
        (401, "access_denied".into())
    );
    assert_eq!(list(removed, alice).await, (200, String::new()));

    // Expired an hour ago (signed with the same key).
    let dir = Directory::build(&Settings::defaults().directory).unwrap();
    let old = Tokens::new(KEY, Duration::from_secs(60), &dir)
        .issue("alice-app", "alice-secret", unix_now() - 3600)
        .unwrap()
        .token;
    assert_eq!(list(app(), old).await, (401, "access_denied".into()));
}

#[tokio::test]
async fn token_requests_as_form_or_json() {
    let app = app();
    let json_req = |ctype: &str, body: &str| {
        Request::builder()
            .method("POST")
            .uri("/oauth/token.php")
            .header("content-type", ctype)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let body =
        r#"{"grant_type":"client_credentials","client_id":"bob-app","client_secret":"bob-secret"}"#;
    let (st, resp) = parts(raw(&app, json_req("application/json", body)).await).await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(resp["expires_in"], 60);
    let form = credentials("bob-app", "bob-secret");
    let (st, _) = parts(
        raw(
            &app,
            json_req("application/x-www-form-urlencoded; charset=UTF-8", &form),
        )
        .await,
    )
    .await;
    assert_eq!(st, 200);
    let rows = [
        ("text/plain", form.as_str(), 415, "unsupported_media_type"),
        (
            "application/json",
            "{\"grant_type\":",
            400,
            "invalid_request",
        ),
        ("application/json", "[1]", 400, "invalid_request"),
        (
            "application/json",
            r#"{"grant_type":7}"#,
            400,
            "invalid_request",
        ),
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&grant_type=password",
            400,
            "invalid_request",
        ),
    ];
    for (ctype, body, status, code) in rows {
        let (st, resp) = parts(raw(&app, json_req(ctype, body)).await).await;
        assert_eq!(
            (st, resp["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{ctype} {body} → {resp}"
        );
    }
}

#[tokio::test]
async fn failed_token_requests_are_throttled_per_app_and_per_address() {
    let limits = Limits {
        token_failures_per_client: 3,
        token_failures_per_address: 5,
        ..Limits::default()
    };
    let app = app_with(Settings::defaults().directory, limits);
    // Three wrong secrets for alice-app, each from another address.
    for i in 1..=3 {
        let addr = format!("198.51.100.{i}:5000");
        let (st, body, _) = token_from(&app, &addr, &credentials("alice-app", "guess")).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    // Now alice-app is refused from anywhere, the right secret included, until the
    // window ends; bob-app is not.
    let (st, body, retry) = token_from(
        &app,
        "203.0.113.9:5000",
        &credentials("alice-app", "alice-secret"),
    )
    .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(body["error"]["message"].is_string());
    let (st, _, _) = token_from(
        &app,
        "203.0.113.9:5000",
        &credentials("bob-app", "bob-secret"),
    )
    .await;
    assert_eq!(st, 200);

    // Five failures from one address, for made-up clients: that address is refused,
    // even for bob-app with its secret; another address is not.
    for i in 0..5 {
        let (st, _, _) = token_from(
            &app,
            "192.0.2.66:1",
            &credentials(&format!("nobody-{i}"), "x"),
        )
        .await;
        assert_eq!(st, 401);
    }
    let (st, body, retry) =
        token_from(&app, "192.0.2.66:2", &credentials("bob-app", "bob-secret")).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (429, Some("too_many_requests"))
    );
    assert!(retry.is_some());
    let (st, _, _) = token_from(&app, "192.0.2.67:1", &credentials("bob-app", "bob-secret")).await;
    assert_eq!(st, 200);

    // Requests with a token are not throttled: the addresses' tokens still work.
    let t = token(&app, "org-app").await;
    let (st, _) = send(&app, "GET", "/uapi/phoneCalls/@me/@self", Some(&t), "").await;
    assert_eq!(st, 200);
}

/// Each failure of the HTTP exchange itself answers the UAPI body, with its code.
#[tokio::test]
async fn http_failures_answer_uapi_errors() {
    let limits = Limits {
        body_timeout_secs: 1,
        ..Limits::default()
    };
    let app = app_with(Settings::defaults().directory, limits.clone());
    let t = token(&app, "alice-app").await;
    let put = "/uapi/phoneCalls/@me/0003*210";
    let big = format!(
        r#"{{"action":"OffHold","pad":"{}"}}"#,
        "x".repeat(limits.max_body_bytes)
    );
    let long_uri = format!(
        "/uapi/phoneCalls/@me/@self?filterValue={}",
        "9".repeat(limits.max_uri_bytes)
    );
    let req = |method: &str, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {t}"))
    };
    let never_ending = Body::from_stream(futures_util::stream::pending::<
        Result<axum::body::Bytes, std::io::Error>,
    >());
    let rows: Vec<(Request<Body>, u16, &str)> = vec![
        // A body over the limit, with and without its length declared.
        (
            req("PUT", put).body(Body::from(big.clone())).unwrap(),
            413,
            "request_too_large",
        ),
        (
            req("PUT", put)
                .header("content-length", big.len())
                .body(Body::from(big.clone()))
                .unwrap(),
            413,
            "request_too_large",
        ),
        // A body that does not come.
        (
            req("PUT", put).body(never_ending).unwrap(),
            408,
            "request_timeout",
        ),
        (
            req("GET", &long_uri).body(Body::empty()).unwrap(),
            414,
            "request_uri_too_long",
        ),
        (
            req("GET", "/uapi/phoneCalls/@me/@self")
                .header("x-padding", "p".repeat(limits.max_header_bytes))
                .body(Body::empty())
                .unwrap(),
            431,
            "request_headers_too_large",
        ),
        // A path that is not UTF-8 once decoded (axum's own 400, in plain text before).
        (
            req("GET", "/uapi/phoneCalls/%FF/@self")
                .body(Body::empty())
                .unwrap(),
            400,
            "request_invalid",
        ),
        (
            req("DELETE", "/uapi/phoneCalls/@me/%C3%28/x")
                .body(Body::empty())
                .unwrap(),
            400,
            "request_invalid",
        ),
        (
            req("GET", "/uapi/nothing").body(Body::empty()).unwrap(),
            404,
            "resource_not_found",
        ),
    ];
    for (r, status, code) in rows {
        let what = format!(
            "{} {}",
            r.method(),
            &r.uri().to_string()[..r.uri().to_string().len().min(60)]
        );
        let resp = raw(&app, r).await;
        let ctype = resp.headers().get("content-type").cloned();
        let (st, body) = parts(resp).await;
        assert_eq!(
            (st, body["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{what} → {body}"
        );
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
        assert_eq!(ctype.unwrap(), "application/json", "{what}");
    }
}

/// Every 2xx has a JSON body: clients parse one on each.
#[tokio::test]
async fn every_success_has_a_json_body() {
    let app = app();
    let t = token(&app, "admin-app").await;
    for (method, uri, body) in [
        ("GET", "/uapi/phoneCalls/@me/@self/", ""),
        (
            "GET",
            "/uapi/phoneCalls/@me/@self/0123456789abcdef0123/",
            "",
        ),
        (
            "PUT",
            "/uapi/phoneCalls/@me/0003*210/",
            r#"{"action":"OnHold"}"#,
        ),
        ("DELETE", "/uapi/phoneCalls/@me/0003*210/", ""),
        (
            "DELETE",
            "/uapi/phoneCalls/@me/0003*210/0123456789abcdef0123/",
            "",
        ),
        (
            "DELETE",
            "/uapi/phoneCalls/@me/0003*210?phoneNumber=3235742879",
            "",
        ),
    ] {
        let (st, v) = send(&app, method, uri, Some(&t), body).await;
        assert!((200..300).contains(&st), "{method} {uri} → {st} {v}");
        assert!(!v.is_null(), "{method} {uri}: a JSON body");
    }
}
