//! The local Graph server, driven by enid's own HTTP client (`connector-http`, a client secret
//! and a certificate's assertion): it refuses what Graph refuses (a wrong secret, a taken UPN,
//! even a soft-deleted user's, a write to a user synchronised from AD, more than 20 members or
//! requests at once), pages users and delta rounds, expires delta links, and throttles past its
//! write quota with 429 and `Retry-After`, inside `$batch` too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_http::{
    Assertion, Auth, ClientAuth, Credentials, HttpClient, HttpSettings, Method, OAuthSettings, Request,
};
use graph_server::Config;
use serde_json::{Value, json};
use std::time::Duration;

fn settings(url: String) -> HttpSettings {
    HttpSettings {
        url,
        tls_ca_file: None,
        tls_insecure_skip_verify: false,
        tls_cert_file: None,
        tls_key_file: None,
        max_requests_per_second: None,
        max_in_flight: 4,
        timeout: Duration::from_secs(5),
        max_attempts: 1,
        max_wait: Duration::from_secs(5),
        content_type: "application/json",
    }
}

fn client(server: &graph_server::Server, credentials: Credentials) -> HttpClient {
    let c = Config::default();
    let auth = Auth::OAuth(OAuthSettings {
        token_url: format!("{}/{}/oauth2/v2.0/token", server.url(), c.tenant_id),
        scope: Some("https://graph.microsoft.com/.default".into()),
        credentials,
    });
    HttpClient::new(settings(format!("{}/v1.0", server.url())), auth).unwrap()
}

fn secret(s: &str) -> Credentials {
    Credentials::Secret {
        client_id: Config::default().client_id,
        client_secret: connector_api::Secret::new(s),
        client_auth: ClientAuth::Form,
    }
}

fn user(alias: &str) -> Value {
    json!({"accountEnabled": true, "displayName": alias, "mailNickname": alias,
           "userPrincipalName": format!("{alias}@skola.example.org"),
           "passwordProfile": {"password": "Tr0ub4dor&3x", "forceChangePasswordNextSignIn": true},
           "employeeId": alias, "usageLocation": "SE"})
}

fn req(method: Method, path: &str) -> Request {
    Request::new(method, path, path.to_string())
}

#[tokio::test]
async fn a_client_secret_or_a_certificates_assertion_gets_a_token_and_a_wrong_secret_does_not() {
    let dir = std::env::temp_dir().join(format!("enid-graph-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=enid-graph-test",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let public =
        std::process::Command::new("openssl").args(["x509", "-pubkey", "-noout", "-in"]).arg(&cert).output().unwrap();
    let cert_key = connector_http::CertificateKey::load(&cert, &key, "test certificate").unwrap();
    let certificate = graph_server::Certificate {
        x5t: cert_key.x5t.clone(),
        public_key_pem: String::from_utf8(public.stdout).unwrap(),
    };
    let server = graph_server::start(Config { certificate: Some(certificate), ..Config::default() }).await.unwrap();
    client(&server, secret("graph-test-secret")).send(&req(Method::GET, "users")).await.unwrap();
    let e = client(&server, secret("wrong")).send(&req(Method::GET, "users")).await.unwrap_err();
    assert!(matches!(e.into_target(), connector_api::TargetError::Auth { .. }));
    let by_cert =
        Credentials::Assertion(Assertion::ClientCertificate { client_id: Config::default().client_id, key: cert_key });
    client(&server, by_cert).send(&req(Method::GET, "users")).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_soft_deleted_user_holds_its_upn_until_restored_and_a_synced_user_is_never_written() {
    let server = graph_server::start(Config::default()).await.unwrap();
    let api = client(&server, secret("graph-test-secret"));
    let made = api.send(&req(Method::POST, "users").json(user("anna.berg"))).await.unwrap();
    assert_eq!(made.status, 201);
    let id = made.body["id"].as_str().unwrap().to_string();
    let e = api.send(&req(Method::POST, "users").json(user("Anna.Berg"))).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("Another object with the same value"), "{e}");
    api.send(&req(Method::DELETE, &format!("users/{id}"))).await.unwrap();
    assert_eq!(api.send(&req(Method::GET, &format!("users/{id}"))).await.unwrap_err().status(), Some(404));
    let e = api.send(&req(Method::POST, "users").json(user("anna.berg"))).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "a soft-deleted user still holds the UPN");
    let back = api.send(&req(Method::POST, &format!("directory/deletedItems/{id}/restore"))).await.unwrap();
    assert_eq!(back.body["userPrincipalName"], "anna.berg@skola.example.org");
    let synced = server.handle().add_synced_user("bo.ek@skola.example.org", "Bo Ek");
    let e = api
        .send(&req(Method::PATCH, &format!("users/{synced}")).json(json!({"accountEnabled": false})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("on-premises mastered"), "{e}");
    let e = api.send(&req(Method::POST, "users").json(json!({"displayName": "x"}))).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
}

#[tokio::test]
async fn users_and_delta_rounds_page_and_a_delta_link_gives_what_changed_until_it_expires() {
    let server = graph_server::start(Config::default()).await.unwrap();
    let api = client(&server, secret("graph-test-secret"));
    let mut ids = Vec::new();
    for i in 0..250 {
        ids.push(
            api.send(&req(Method::POST, "users").json(user(&format!("p{i:03}")))).await.unwrap().body["id"].clone(),
        );
    }
    // Paged listing, $top 100, following nextLink verbatim.
    let (mut seen, mut next) = (0, Some("users?$top=100".to_string()));
    while let Some(path) = next {
        let page = api.send(&req(Method::GET, &path)).await.unwrap().body;
        seen += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 250);
    let filtered = api.send(&req(Method::GET, "users").query("$filter", "employeeId eq 'p007'")).await.unwrap().body;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    // A first delta round: every user, then a delta link.
    let round = |start: String| {
        let api = &api;
        async move {
            let (mut items, mut link) = (Vec::<Value>::new(), Some(start));
            loop {
                let page = api.send(&req(Method::GET, link.as_deref().unwrap())).await?.body;
                items.extend(page["value"].as_array().unwrap().iter().cloned());
                if let Some(n) = page["@odata.nextLink"].as_str() {
                    link = Some(n.to_string());
                } else {
                    return Ok::<_, connector_http::HttpError>((
                        items,
                        page["@odata.deltaLink"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    };
    let (first, delta) = round("users/delta?$select=id,userPrincipalName,accountEnabled".into()).await.unwrap();
    assert_eq!(first.len(), 250);
    let (none, delta) = round(delta).await.unwrap();
    assert!(none.is_empty(), "nothing changed: {none:?}");
    let (a, b) = (ids[3].as_str().unwrap(), ids[4].as_str().unwrap());
    api.send(&req(Method::PATCH, &format!("users/{a}")).json(json!({"accountEnabled": false}))).await.unwrap();
    api.send(&req(Method::DELETE, &format!("users/{b}"))).await.unwrap();
    let (changed, delta) = round(delta).await.unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed.iter().any(|u| u["id"] == a && u["accountEnabled"] == false));
    assert!(changed.iter().any(|u| u["id"] == b && u["@removed"]["reason"] == "changed"));
    server.handle().expire_delta_links();
    let e = round(delta).await.unwrap_err();
    assert_eq!(e.status(), Some(410), "{e}");
}

#[tokio::test]
async fn groups_take_twenty_members_a_request_and_their_delta_says_who_left() {
    let server = graph_server::start(Config::default()).await.unwrap();
    let api = client(&server, secret("graph-test-secret"));
    let mut binds = Vec::new();
    for i in 0..21 {
        let id = api.send(&req(Method::POST, "users").json(user(&format!("m{i}")))).await.unwrap().body["id"].clone();
        binds.push(format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", id.as_str().unwrap()));
    }
    let group = |n: usize| {
        json!({"displayName": "7A", "mailNickname": "7a", "securityEnabled": true, "mailEnabled": false,
               "members@odata.bind": binds[..n]})
    };
    assert_eq!(api.send(&req(Method::POST, "groups").json(group(21))).await.unwrap_err().status(), Some(400));
    let g = api.send(&req(Method::POST, "groups").json(group(20))).await.unwrap().body;
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(server.handle().members(&gid).len(), 20);
    let (_, link) = {
        let page = api.send(&req(Method::GET, "groups/delta")).await.unwrap().body;
        (page.clone(), page["@odata.deltaLink"].as_str().unwrap().to_string())
    };
    let last = binds[20].clone();
    let add = req(Method::POST, &format!("groups/{gid}/members/$ref")).json(json!({"@odata.id": last}));
    api.send(&add).await.unwrap();
    assert_eq!(api.send(&add).await.unwrap_err().status(), Some(400), "already a member");
    let first = binds[0].rsplit('/').next().unwrap().to_string();
    api.send(&req(Method::DELETE, &format!("groups/{gid}/members/{first}/$ref"))).await.unwrap();
    let page = api.send(&req(Method::GET, &link)).await.unwrap().body;
    let delta = page["value"][0]["members@delta"].as_array().unwrap().clone();
    assert_eq!(delta.len(), 2, "{delta:?}");
    assert!(delta.iter().any(|m| m["id"] == first && m["@removed"].is_object()));
}

#[tokio::test]
async fn past_the_write_quota_a_batch_answers_each_request_on_its_own_with_its_retry_after() {
    let server = graph_server::start(Config { writes_per_window: Some(3), ..Config::default() }).await.unwrap();
    let api = client(&server, secret("graph-test-secret"));
    let requests: Vec<Value> = (0..5)
        .map(|i| {
            json!({"id": i.to_string(), "method": "POST", "url": "/users", "body": user(&format!("b{i}")),
                        "headers": {"Content-Type": "application/json"}})
        })
        .collect();
    let answer = api.send(&req(Method::POST, "$batch").json(json!({"requests": requests}))).await.unwrap().body;
    let responses = answer["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 5);
    let created = responses.iter().filter(|r| r["status"] == 201).count();
    let throttled: Vec<&Value> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!((created, throttled.len()), (3, 2));
    assert!(
        throttled.iter().all(|r| r["headers"]["retry-after"].as_str().is_some_and(|s| s.parse::<u64>().unwrap() >= 1))
    );
    let too_many: Vec<Value> =
        (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"})).collect();
    let e = api.send(&req(Method::POST, "$batch").json(json!({"requests": too_many}))).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    // Outside $batch: 429 with Retry-After, which the client would wait out.
    let e = api.send(&req(Method::POST, "users").json(user("late"))).await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    server.handle().advance(Duration::from_secs(151));
    api.send(&req(Method::POST, "users").json(user("late"))).await.unwrap();
}
