//! The local Google server, driven by enid's own HTTP client (`connector-http` with a service
//! account's grant): it refuses what Google refuses (a subject without delegation, a scope not
//! granted, a foreign domain, a taken email, a user still being made), pages as Google pages,
//! and throttles past its quota with 403 `userRateLimitExceeded`, which the client waits out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use connector_http::{Assertion, Auth, Credentials, HttpClient, HttpSettings, Method, OAuthSettings, Request};
use google_server::{Config, ServiceAccount, USER_SCOPE};
use serde_json::json;
use std::time::Duration;

/// A key pair made by openssl: (private PKCS#8 PEM, public PEM).
fn keys() -> (String, String) {
    let dir = std::env::temp_dir().join(format!(
        "enid-google-server-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    let public = std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().unwrap();
    let private = std::fs::read_to_string(&key).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (private, String::from_utf8(public.stdout).unwrap())
}

struct Setup {
    server: google_server::Server,
    private: String,
}

async fn setup(config: impl FnOnce(&mut Config)) -> Setup {
    let (private, public) = keys();
    let mut c = Config {
        service_account: ServiceAccount {
            client_email: "enid@school.iam.gserviceaccount.com".into(),
            key_id: "k1".into(),
            public_key_pem: public,
        },
        ..Config::default()
    };
    config(&mut c);
    Setup { server: google_server::start(c).await.unwrap(), private }
}

impl Setup {
    fn client(&self, subject: &str, scope: &str) -> HttpClient {
        let key = serde_json::json!({
            "type": "service_account", "private_key_id": "k1", "private_key": self.private,
            "client_email": "enid@school.iam.gserviceaccount.com", "token_uri": format!("{}/token", self.server.url()),
        });
        let key = connector_http::ServiceAccountKey::from_json(&key.to_string(), "test key").unwrap();
        let auth = Auth::OAuth(OAuthSettings {
            token_url: key.token_uri.clone(),
            scope: Some(scope.into()),
            credentials: Credentials::Assertion(Assertion::Grant { key, subject: Some(subject.into()) }),
        });
        let settings = HttpSettings {
            url: format!("{}/admin/directory/v1", self.server.url()),
            tls_ca_file: None,
            tls_insecure_skip_verify: false,
            tls_cert_file: None,
            tls_key_file: None,
            max_requests_per_second: None,
            max_in_flight: 4,
            timeout: Duration::from_secs(5),
            max_attempts: 6,
            max_wait: Duration::from_secs(20),
            content_type: "application/json",
        };
        HttpClient::new(settings, auth).unwrap()
    }

    fn admin(&self) -> HttpClient {
        let scopes = [USER_SCOPE, google_server::GROUP_SCOPE, google_server::ORGUNIT_SCOPE].join(" ");
        self.client("admin@skola.example.org", &scopes)
    }
}

fn user(email: &str, ou: &str) -> serde_json::Value {
    json!({"primaryEmail": email, "name": {"givenName": "Anna", "familyName": "Berg"},
           "password": "Tr0ub4dor&3x", "changePasswordAtNextLogin": true, "orgUnitPath": ou,
           "externalIds": [{"type": "organization", "value": "enid:0f8f"}]})
}

fn post(path: &str, body: serde_json::Value) -> Request {
    Request::new(Method::POST, path, format!("post {path}")).json(body)
}

fn get(path: &str) -> Request {
    Request::new(Method::GET, path, format!("get {path}"))
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_subject_or_scope_the_delegation_does_not_cover() {
    let s = setup(|_| {}).await;
    let teacher = s.client("teacher@skola.example.org", USER_SCOPE);
    let e = teacher.send(&get("users?customer=my_customer")).await.unwrap_err();
    assert!(e.to_string().contains("Client is unauthorized"), "{e}");
    let unlisted = s.client("admin@skola.example.org", "https://www.googleapis.com/auth/admin.directory.device.mobile");
    assert!(unlisted.send(&get("users?customer=my_customer")).await.is_err());
    // A token for users only is refused by groups with Google's 403.
    let users_only = s.client("admin@skola.example.org", USER_SCOPE);
    users_only.send(&get("users?customer=my_customer")).await.unwrap();
    let e = users_only.send(&get("groups?customer=my_customer")).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(e.to_string().contains("insufficient authentication scopes"), "{e}");
}

#[tokio::test]
async fn users_are_inserted_once_listed_a_page_at_a_time_and_changed_only_once_made() {
    let s = setup(|c| c.propagation = Duration::from_secs(30)).await;
    let api = s.admin();
    api.send(&post("customer/my_customer/orgunits", json!({"name": "Elever", "parentOrgUnitPath": "/"})))
        .await
        .unwrap();
    api.send(&post("customer/my_customer/orgunits", json!({"name": "S1", "parentOrgUnitPath": "/Elever"})))
        .await
        .unwrap();
    let made = api.send(&post("users", user("anna.berg@skola.example.org", "/Elever/S1"))).await.unwrap().body;
    assert!(made.get("password").is_none(), "the password never comes back");
    let id = made["id"].as_str().unwrap().to_string();
    // Taken: 409; another domain: 403; an org unit that does not exist: 400.
    let e = api.send(&post("users", user("Anna.Berg@skola.example.org", "/Elever/S1"))).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    let e = api.send(&post("users", user("bo@other.example", "/"))).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let e = api.send(&post("users", user("bo@skola.example.org", "/Nowhere"))).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    // Still being made: 404 by id, 412 to a change; once made, both work.
    assert_eq!(api.send(&get(&format!("users/{id}"))).await.unwrap_err().status(), Some(404));
    let suspend = Request::new(Method::PATCH, format!("users/{id}"), "suspend").json(json!({"suspended": true}));
    let e = api.send(&suspend).await.unwrap_err();
    assert_eq!(e.status(), Some(412), "{e}");
    assert!(e.to_string().contains("User creation is not complete"), "{e}");
    s.server.handle().advance(Duration::from_secs(31));
    assert_eq!(api.send(&suspend).await.unwrap().body["suspended"], true);
    // Paging: 7 users below /Elever, 3 a page; one outside.
    for i in 0..6 {
        api.send(&post("users", user(&format!("p{i}@skola.example.org"), "/Elever"))).await.unwrap();
    }
    api.send(&post("users", user("staff@skola.example.org", "/"))).await.unwrap();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut r = get("users")
            .query("customer", "my_customer")
            .query("maxResults", "3")
            .query("query", "orgUnitPath='/Elever'");
        if let Some(t) = &token {
            r = r.query("pageToken", t.clone());
        }
        let page = api.send(&r).await.unwrap().body;
        let users = page["users"].as_array().cloned().unwrap_or_default();
        assert!(users.len() <= 3);
        seen.extend(users.iter().map(|u| u["primaryEmail"].as_str().unwrap().to_string()));
        match page["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(!seen.contains(&"staff@skola.example.org".to_string()));
    let by_marker = api
        .send(&get("users").query("customer", "my_customer").query("query", "externalId='enid:0f8f'"))
        .await
        .unwrap()
        .body;
    assert_eq!(by_marker["users"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn past_the_quota_a_403_rate_limit_is_answered_and_the_client_waits_it_out() {
    let s = setup(|c| {
        c.queries_per_window = Some(3);
        c.quota_window = Duration::from_millis(700);
    })
    .await;
    let api = s.admin();
    for _ in 0..8 {
        api.send(&get("users?customer=my_customer")).await.unwrap();
    }
    let refused = s.server.handle().log().len() - 8 - 1; // minus the token request
    assert!(refused > 0, "the quota was reached and waited out");
}

#[tokio::test]
async fn groups_take_members_once_and_a_second_add_is_409() {
    let s = setup(|_| {}).await;
    let api = s.admin();
    api.send(&post("users", user("anna.berg@skola.example.org", "/"))).await.unwrap();
    api.send(&post("groups", json!({"email": "7a@skola.example.org", "name": "7A"}))).await.unwrap();
    let add =
        post("groups/7a@skola.example.org/members", json!({"email": "anna.berg@skola.example.org", "role": "MEMBER"}));
    api.send(&add).await.unwrap();
    let e = api.send(&add).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert_eq!(s.server.handle().members("7a@skola.example.org"), ["anna.berg@skola.example.org"]);
    let e = api.send(&post("groups", json!({"email": "anna.berg@skola.example.org"}))).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "a user's email is taken for a group too");
}
