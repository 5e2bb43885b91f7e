//! The PostgreSQL store against the shared suite (directly and through [`Store`]), and what only
//! a server database has: the URL's rules (no password inside, TLS verified unless it says
//! otherwise), a wrong password, and two stores opening one empty database at once.
//!
//! One server serves every test: the one `tests/scripts/test.sh` started (`ENID_TEST_PG_PORT`),
//! or one this test binary starts through `tests/scripts/postgres.sh`, stopped by its watchdog
//! when the binary ends. Each test gets a database of its own, created by the superuser.

use super::{PgStore, parse_url};
use crate::store::suite::store_suite;
use crate::store::{StateStore, Store};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The password of the role `enid` on the test server (tests/scripts/postgres.sh's default).
pub(crate) const PASSWORD: &str = "enid-test-pw";

/// The shared server's port.
pub(crate) fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        if let Ok(port) = std::env::var("ENID_TEST_PG_PORT")
            && let Ok(port) = port.parse()
        {
            return port;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = repo.join(format!("target/test-pg-{}", std::process::id()));
        let out = std::process::Command::new(repo.join("tests/scripts/postgres.sh"))
            .arg(&dir)
            .arg(port.to_string())
            .env("WATCH_PID", std::process::id().to_string())
            .env("REMOVE_AFTER", "1")
            .output()
            .expect("run tests/scripts/postgres.sh (Debian's postgresql needed: run tests/scripts/test.sh)");
        assert!(out.status.success(), "postgres.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        port
    })
}

/// A new, empty database owned by `enid`; its URL (without the password).
pub(crate) async fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let port = port();
    let admin = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} OWNER enid"))).execute(&admin).await.unwrap();
    admin.close().await;
    format!("postgres://enid@127.0.0.1:{port}/{name}")
}

async fn open() -> ((), PgStore) {
    let url = fresh_database().await;
    ((), PgStore::open(parse_url(&url, Some(PASSWORD)).unwrap()).await.unwrap())
}

mod direct {
    use super::*;
    store_suite!(open());
}

mod through_the_enum {
    use super::*;

    async fn open_any() -> ((), Store) {
        let (guard, store) = open().await;
        (guard, Store::Postgres(store))
    }

    store_suite!(open_any());
}

#[tokio::test]
async fn a_reopened_database_keeps_its_state_and_is_not_new() {
    let url = fresh_database().await;
    let store = PgStore::open(parse_url(&url, Some(PASSWORD)).unwrap()).await.unwrap();
    assert!(store.created());
    store.set_meta("k", "v").await.unwrap();
    let again = PgStore::open(parse_url(&url, Some(PASSWORD)).unwrap()).await.unwrap();
    assert!(!again.created());
    assert_eq!(again.meta("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(again.path(), url);
}

#[tokio::test]
async fn two_stores_opening_one_empty_database_at_once_create_the_schema_once() {
    let url = fresh_database().await;
    let open = || async { PgStore::open(parse_url(&url, Some(PASSWORD)).unwrap()).await };
    let (a, b) = tokio::join!(open(), open());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.created() != b.created(), "exactly one says it created the state: {} {}", a.created(), b.created());
    a.set_meta("k", "a").await.unwrap();
    assert_eq!(b.meta("k").await.unwrap().as_deref(), Some("a"));
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_never_shows_it() {
    let url = fresh_database().await;
    let err = PgStore::open(parse_url(&url, Some("not-the-Secret-9")).unwrap()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot connect"), "{text}");
    assert!(text.contains(&url), "the database is named: {text}");
    assert!(!text.contains("not-the-Secret-9"), "{text}");
}

#[tokio::test]
async fn a_missing_database_is_an_error_never_created() {
    let url = format!("postgres://enid@127.0.0.1:{}/no_such_database", port());
    let err = PgStore::open(parse_url(&url, Some(PASSWORD)).unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("no_such_database"), "{err}");
}

#[test]
fn a_password_inside_the_url_is_refused_without_echoing_it() {
    let err = parse_url("postgres://enid:hunter2@db.example.org/enid", None).unwrap_err();
    assert!(err.contains("db_password_file"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(parse_url("mysql://x@y/z", None).unwrap_err().contains("postgres://"));
}

#[test]
fn tls_is_verified_unless_the_server_is_this_machine_or_the_url_says_otherwise() {
    use sqlx::postgres::PgSslMode;
    let remote = parse_url("postgres://enid@db.example.org/enid", Some("pw")).unwrap();
    assert!(matches!(remote.options.get_ssl_mode(), PgSslMode::VerifyFull));
    assert!(!remote.unverified);
    assert_eq!(remote.shown, "postgres://enid@db.example.org:5432/enid");
    let local = parse_url("postgres://enid@127.0.0.1:5433/enid", None).unwrap();
    assert!(!local.unverified);
    let lax = parse_url("postgres://enid@db.example.org/enid?sslmode=require", None).unwrap();
    assert!(matches!(lax.options.get_ssl_mode(), PgSslMode::Require));
    assert!(lax.unverified, "require does not check the certificate's name");
    assert!(!format!("{:?}", remote.shown).contains("pw"));
}

#[tokio::test]
async fn a_backup_says_to_use_pg_dump_and_writes_nothing() {
    let (_, store) = open().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup.db");
    let err = store.backup(&dest).await.unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
    assert!(!dest.exists());
}

mod leases {
    use super::*;
    use crate::store::postgres::lease::{Lease, LeaseError};
    use std::time::Duration;

    async fn holder_row(store: &PgStore, holder: &str, seconds: i64) {
        sqlx::query(
            "INSERT INTO leases (name, holder, acquired_at, expires_at, fence)
             VALUES ('run', $1, now(), now() + $2 * interval '1 second', 7)",
        )
        .bind(holder)
        .bind(seconds)
        .execute(store.pool())
        .await
        .unwrap();
    }

    fn host() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_named_to_the_other_and_free_once_released() {
        let (_, store) = open().await;
        let first = Lease::acquire(&store, "run", "`enid apply`", Duration::from_secs(30)).await.unwrap();
        assert!(first.holds());
        let err = Lease::acquire(&store, "run", "`enid adopt`", Duration::from_secs(30)).await.unwrap_err();
        let LeaseError::Busy { holder, state, .. } = &err else { panic!("{err}") };
        assert!(holder.contains(&format!(":{}:", std::process::id())) && holder.contains("`enid apply`"), "{holder}");
        assert!(state.starts_with("postgres://enid@127.0.0.1:"), "{state}");
        let fence = first.fence();
        first.release().await;
        let second = Lease::acquire(&store, "run", "`enid adopt`", Duration::from_secs(30)).await.unwrap();
        assert_eq!(second.fence(), fence + 1, "a new holder gets a greater fence");
    }

    #[tokio::test]
    async fn a_holder_elsewhere_keeps_it_until_it_expires() {
        let (_, store) = open().await;
        holder_row(&store, "elsewhere.example.org:4242:abc (`enid run`)", 2).await;
        let err = Lease::acquire(&store, "run", "`enid apply`", Duration::from_secs(30)).await.unwrap_err();
        assert!(err.to_string().contains("elsewhere.example.org:4242"), "{err}");
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let lease = Lease::acquire(&store, "run", "`enid apply`", Duration::from_secs(30)).await.unwrap();
        assert_eq!(lease.fence(), 8, "the fence grows past the dead holder's");
    }

    #[tokio::test]
    async fn a_dead_process_on_this_machine_gives_the_lease_up_at_once() {
        let (_, store) = open().await;
        // A pid that is not running: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let scope = crate::store::postgres::lease::pid_scope();
        holder_row(&store, &format!("{}:{pid}:{scope}:abc (`enid apply`)", host()), 3600).await;
        let lease = Lease::acquire(&store, "run", "`enid apply`", Duration::from_secs(30)).await.unwrap();
        assert!(lease.holds());
        // A live process on this machine keeps it.
        drop(lease);
        let (_, other) = open().await;
        holder_row(&other, &format!("{}:1:{scope}:abc (`enid run`)", host()), 3600).await;
        // Nor is a holder of another pid namespace or boot (a container with the host's name).
        let (_, third) = open().await;
        holder_row(&third, &format!("{}:{pid}:0123456789ab.4026531836:abc (`enid run`)", host()), 3600).await;
        assert!(Lease::acquire(&third, "run", "`enid apply`", Duration::from_secs(30)).await.is_err());
        assert!(Lease::acquire(&other, "run", "`enid apply`", Duration::from_secs(30)).await.is_err());
    }

    #[tokio::test]
    async fn a_lease_is_renewed_while_held_and_a_lost_lease_stops_holding() {
        let (_, store) = open().await;
        let lease = Lease::acquire(&store, "run", "`enid run`", Duration::from_secs(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(lease.holds(), "renewed past its first second");
        assert!(Lease::acquire(&store, "run", "`enid apply`", Duration::from_secs(1)).await.is_err());
        // Someone else takes the row (an operator, or a node that saw it expire).
        sqlx::query("UPDATE leases SET holder = 'thief:1:x', fence = fence + 1").execute(store.pool()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(lease.confirmed().is_none(), "the renewal found the lease gone (not merely run out)");
    }
}
