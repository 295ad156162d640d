//! The citizen page `/innsyn` end to end, in headless Chromium driven over WebDriver
//! (Debian's chromedriver): a real cluster and a `kartotek frontend` process with the dev
//! login. A citizen logs in through the page's form, sees a lookup just made on them by a
//! named organisation (the organisation, not yet the person: the name delay), an older
//! forwarded access with the personnel shown, and an emergency override highlighted;
//! acknowledges the override notification; withdraws a consent and sees it gone (and the
//! cluster agrees). A parent sees their 10-year-old's view and not their 17-year-old's.
//! A POST without the page's CSRF token is refused. Screenshots go to
//! `<target>/screenshots/innsyn*.png`.
//!
//! The WebDriver client is the few W3C WebDriver calls the test needs, over the HTTP helper
//! of `it::token_service` (a WebDriver crate would enable syn features that rebuild RocksDB).
//! Without chromedriver the test fails under `CI` and says it skipped otherwise.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use common::{TestCluster, citizen, free_port, org, person_born};
use kartotek_auth::scopes;
use kartotek_client::ClientFile;
use kartotek_proto::v1;
use kartotek_testkit::NodeSpec;
use serde_json::{Value, json};

use super::token_service::{Frontend, http_with, registered_client, wait_listening};

/// The frontend's address and public JWK Set file, known before the cluster starts: the
/// dev login needs an `http://` loopback issuer, so the nodes trust the frontend's issuer
/// besides the test issuer (with a key of its own: a verifier takes one key for one issuer).
static FRONTEND: OnceLock<(SocketAddr, PathBuf)> = OnceLock::new();

/// Node tweak: trust the test issuer and the frontend's.
fn trust_frontend(spec: &mut NodeSpec) {
    let (addr, jwks) = FRONTEND.get().expect("frontend set before the cluster");
    trust_frontend_at(spec, addr, jwks);
}

/// Node tweak: trust the test issuer and the frontend at `addr` with public keys `jwks`.
pub(crate) fn trust_frontend_at(spec: &mut NodeSpec, addr: &SocketAddr, jwks: &Path) {
    spec.extra_toml.push_str(&common::issuer().node_toml());
    spec.extra_toml.push_str(&format!(
        "\n[[auth.trusted_issuers]]\nissuer = \"http://{addr}\"\naudience = \"kartotek\"\njwks_file = \"{}\"\n",
        jwks.display()
    ));
}

/// A fresh signing key for the frontend in `dir`: (private key set file, public JWK Set file).
pub(crate) fn frontend_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let key = kartotek_auth::SigningKey::generate_es256().unwrap();
    let public = json!({ "keys": [key.public_key().jwk()] });
    let keys = kartotek_auth::SigningKeySet::single(key);
    let private_file = dir.join("frontend-signing-keys.json");
    std::fs::write(&private_file, keys.to_jwks_json()).unwrap();
    let public_file = dir.join("frontend-jwks.json");
    std::fs::write(&public_file, public.to_string()).unwrap();
    (private_file, public_file)
}

const ORG_NAME: &str = "Testsykehuset HF";

/// A frontend at `addr` with the dev login and the citizen page as `app_file`'s client.
fn start_frontend(
    dir: &Path,
    addr: SocketAddr,
    keys: PathBuf,
    endpoints: Vec<String>,
    app_file: &Path,
    named_org: &str,
) -> Frontend {
    let config = kartotek_frontend::FrontendConfig {
        listen_addr: addr,
        public_base_url: format!("http://{addr}"),
        cluster: kartotek_frontend::ClusterSettings {
            endpoints,
            ..kartotek_frontend::ClusterSettings::default()
        },
        token: kartotek_frontend::TokenSettings {
            signing_keys_file: Some(keys),
            ..kartotek_frontend::TokenSettings::default()
        },
        citizen_login: kartotek_frontend::CitizenLoginSettings {
            dev_login: true,
            ..kartotek_frontend::CitizenLoginSettings::default()
        },
        innsyn: kartotek_frontend::InnsynSettings {
            client_file: Some(app_file.to_path_buf()),
            personnel_names_file: Some(personnel_names(dir)),
            organisations: vec![kartotek_frontend::OrganisationName {
                org: named_org.into(),
                name: ORG_NAME.into(),
            }],
            ..kartotek_frontend::InnsynSettings::default()
        },
        ..kartotek_frontend::FrontendConfig::default()
    };
    Frontend::spawn(&config, dir)
}

/// An HPR export naming the personnel of the forwarded access (the only one shown by now).
fn personnel_names(dir: &Path) -> PathBuf {
    let path = dir.join("hpr-names.csv");
    std::fs::write(
        &path,
        "hpr_number,name\n7654321,Ola Nordlege\n1234567,Kari Lege\n",
    )
    .unwrap();
    path
}

/// The target dir (`CARGO_TARGET_DIR`, else the workspace's `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// chromedriver, killed when dropped.
pub(crate) struct Driver {
    child: Child,
    addr: SocketAddr,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session in headless Chromium.
pub(crate) struct Browser {
    driver: Driver,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium session; none (said so) when chromedriver
    /// is missing and `CI` is unset.
    pub(crate) async fn start() -> Option<Browser> {
        let driver_bin = Path::new("/usr/bin/chromedriver");
        if !driver_bin.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but chromedriver is not installed (.ci/run installs chromium-driver)"
            );
            eprintln!(
                "SKIPPED the innsyn browser test: no /usr/bin/chromedriver (apt-get install chromium-driver)"
            );
            return None;
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(driver_bin)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let driver = Driver {
            child,
            addr,
            _profile: profile,
        };
        wait_listening(addr).await;
        let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("/usr/bin/chromium");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--no-first-run",
                    "--disable-dev-shm-usage", "--window-size=1280,2400",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ],
            },
        } } });
        let (status, answer) = wd(addr, "POST", "/session", Some(&caps)).await;
        assert_eq!(status, 200, "new session: {answer}");
        let session = answer["value"]["sessionId"].as_str().unwrap().to_owned();
        Some(Browser { driver, session })
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, answer) = wd(self.driver.addr, method, &full, body).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .await;
    }

    pub(crate) async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The page source once it contains `text` (waits up to 15 s: a click's navigation may
    /// still be loading when the click answers).
    pub(crate) async fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let page = self.source().await;
            if page.contains(text) {
                return page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} on the page: {page}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The element of CSS `selector` (it must exist).
    pub(crate) async fn find(&self, selector: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(&json!({ "using": "css selector", "value": selector })),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{selector}: {v}"))
            .to_owned()
    }

    /// How many elements match `selector`.
    pub(crate) async fn count(&self, selector: &str) -> usize {
        let v = self
            .call(
                "POST",
                "/elements",
                Some(&json!({ "using": "css selector", "value": selector })),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    pub(crate) async fn type_into(&self, selector: &str, text: &str) {
        let e = self.find(selector).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(&json!({ "text": text })),
        )
        .await;
    }

    pub(crate) async fn click(&self, selector: &str) {
        let e = self.find(selector).await;
        self.call("POST", &format!("/element/{e}/click"), Some(&json!({})))
            .await;
    }

    /// Sends `headers` with every request of the browser from now on (Chrome DevTools'
    /// `Network.setExtraHTTPHeaders`, through chromedriver): a page that takes a bearer
    /// token, as an API client's browser extension or proxy would send it.
    pub(crate) async fn send_headers(&self, headers: &Value) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(&json!({ "cmd": "Network.enable", "params": {} })),
        )
        .await;
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(
                &json!({ "cmd": "Network.setExtraHTTPHeaders", "params": { "headers": headers } }),
            ),
        )
        .await;
    }

    /// Saves a screenshot to `<target>/screenshots/<name>.png`.
    pub(crate) async fn screenshot(&self, name: &str) {
        let b64 = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    /// Ends the session, which closes Chromium: killing chromedriver (Driver's drop) leaves
    /// the browser processes running. A plain blocking request, as drop cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(
            &self.driver.addr,
            std::time::Duration::from_secs(2),
        ) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            self.session, self.driver.addr
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut buf = [0u8; 1024];
            // The answer's head is enough: the session is gone once chromedriver answers.
            let _ = stream.read(&mut buf);
        }
    }
}

/// One WebDriver call: (status, JSON answer). Its own HTTP/1.1 exchange: chromedriver
/// answers `Connection: close` but keeps the socket open, so the answer is read by its
/// `Content-Length`.
async fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let read = async {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if raw.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    let text =
                        String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
                    return (status, text);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "chromedriver closed the connection mid-answer");
            raw.extend_from_slice(&buf[..n]);
        }
    };
    let (status, text) = tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("chromedriver did not answer {method} {path}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Writes the citizen app's client file (what `kartotek dev` writes for dev-citizen-app).
pub(crate) fn client_file(
    dir: &Path,
    addr: SocketAddr,
    client_id: &str,
    key: &kartotek_auth::SigningKey,
) -> PathBuf {
    let file = ClientFile {
        client_id: client_id.into(),
        issuer: format!("http://{addr}"),
        token_endpoint: format!("http://{addr}/connect/token"),
        scope: None,
        private_jwk: key.private_jwk(),
        description: Some("the citizen page of it::innsyn_frontend".into()),
    };
    let path = dir.join("innsyn-app.json");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    path
}

fn rfc3339_days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_see_who_looked_and_act_on_their_records() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let (keys, jwks) = frontend_keys(key_dir.path());
    FRONTEND.set((addr, jwks)).unwrap();
    let cluster = TestCluster::start(1, trust_frontend).await;
    let admin = cluster.client();
    let (hospital, other) = (org(71), org(72));
    let app_key = registered_client(&cluster, "innsyn-app", &org(70), &[scopes::CITIZEN]).await;
    let app = client_file(cluster.dir.path(), addr, "innsyn-app", &app_key);
    let _frontend = start_frontend(
        cluster.dir.path(),
        addr,
        keys,
        cluster.addrs(),
        &app,
        &hospital,
    );
    wait_listening(addr).await;

    let me = person_born(1980, 7);
    let child = person_born(2016, 3);
    let teen = person_born(2009, 3);
    let young_teen = person_born(2013, 3);

    // A lookup just made on the citizen by a clinician of the named hospital.
    let clinician = cluster.client_as(common::clinician("1234567", &hospital));
    clinician
        .lookup_locator(v1::LookupLocatorRequest {
            patient: me.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // An emergency override past the citizen's block of another clinician.
    admin
        .add_block(common::block(&me, "2222222", v1::BlockLevel::Overridable))
        .await
        .unwrap();
    let overrider = cluster.client_as(common::clinician("2222222", &hospital));
    let decision = overrider
        .decide_access(v1::AccessDecisionRequest {
            patient: me.clone(),
            personnel: "2222222".into(),
            org: hospital.clone(),
            service: "kjernejournal".into(),
            purpose: "treatment".into(),
            emergency_override: true,
            justification: "bevisstløs pasient i akuttmottaket".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(decision.effect, v1::AccessEffect::PermitByOverride as i32);
    assert!(decision.notification_id > 0);
    // An access forwarded by a service ten days ago: the personnel are shown by now.
    admin
        .record_audit(v1::RecordAuditEventsRequest {
            events: vec![v1::AuditEvent {
                time: rfc3339_days_ago(10),
                actor: "personnel:7654321".into(),
                org: other.clone(),
                patient: me.clone(),
                action: "patient.read".into(),
                resource: "DocumentReference/epikrise-1".into(),
                purpose: "treatment".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    // A consent the citizen gave a health app.
    let consent = admin
        .grant_consent(v1::GrantConsentRequest {
            patient: me.clone(),
            grantee_kind: v1::GranteeKind::Client as i32,
            grantee: "helseapp".into(),
            scopes: vec!["journal.read".into()],
            purpose: "treatment".into(),
            by: citizen(&me),
            ..Default::default()
        })
        .await
        .unwrap()
        .consent
        .unwrap();
    // The parent has parental responsibility for a 10-, a 13- and a 17-year-old (the
    // registry's rules: from 12 only limited areas, not the log; nothing from 16).
    for c in [&child, &young_teen, &teen] {
        admin
            .grant_representation(v1::GrantRepresentationRequest {
                representative: me.clone(),
                represented: c.clone(),
                kind: v1::RepresentationKind::ParentalResponsibility as i32,
                areas: vec!["*".into()],
                source: v1::RepresentationSource::PopulationRegister as i32,
                granted_by: Some(v1::Actor {
                    kind: v1::ActorKind::System as i32,
                    id: "folkeregisteret".into(),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // A POST without the page's CSRF token changes nothing and logs nobody in.
    let form = format!("pid={me}");
    let (status, head, _) = http_with(
        addr,
        "POST",
        "/innsyn/login",
        &[],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert!(!head.contains("innsyn_session=ey"), "no session: {head}");

    let Some(browser) = Browser::start().await else {
        return;
    };
    let base = format!("http://{addr}");
    // The start page links the citizen page.
    browser.goto(&format!("{base}/")).await;
    browser.click("a[href='/innsyn']").await;
    assert!(browser.source().await.contains("label for=\"pid\""));
    // By keyboard: the national id, then Enter submits the form.
    browser.type_into("#pid", &format!("{me}\u{E007}")).await;
    let page = browser.wait_for("Innlogget som").await;
    assert!(page.contains("<h1>Hvem har sett mine data?</h1>"), "{page}");
    // The lookup by the named hospital; the clinician not named yet (delay: a week).
    assert!(
        page.contains(&format!("{ORG_NAME} (org.nr. {hospital})")),
        "{page}"
    );
    assert!(page.contains("Så hvor du har helseopplysninger"), "{page}");
    assert!(
        !page.contains("1234567"),
        "personnel named before the delay: {page}"
    );
    assert!(
        page.contains("Helsepersonell ved organisasjonen – hvem vises fra"),
        "{page}"
    );
    // The forwarded access of ten days ago names the personnel (name from the HPR file).
    assert!(
        page.contains("Ola Nordlege (helsepersonell, HPR-nummer 7654321)"),
        "{page}"
    );
    assert!(
        !page.contains("Kari Lege"),
        "named before the delay: {page}"
    );
    assert!(
        page.contains(&format!("Organisasjonsnummer {other}")),
        "{page}"
    );
    // The override, highlighted in the list and as a notification.
    assert!(browser.count("tr.override").await >= 1, "{page}");
    assert!(
        page.contains("bevisstløs pasient i akuttmottaket"),
        "{page}"
    );
    assert_eq!(browser.count("#notifications + ul li").await, 1, "{page}");
    browser.screenshot("innsyn").await;

    // Acknowledge the notification.
    browser
        .click("#notifications ~ ul form input[name=action][value=ack] ~ button")
        .await;
    let page = browser.wait_for("Varselet er kvittert ut.").await;
    assert!(page.contains("Ingen nye varsler."), "{page}");
    let pending = admin
        .list_notifications(v1::ListNotificationsRequest {
            patient: me.clone(),
            pending_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.notifications.is_empty(), "{pending:?}");

    // Withdraw the consent: gone from the page, withdrawn in the registry.
    let row = format!("#consent-{}", consent.id);
    assert_eq!(browser.count(&row).await, 1, "{page}");
    browser.click(&format!("{row} button")).await;
    let page = browser.wait_for("Samtykket er trukket tilbake.").await;
    assert_eq!(browser.count(&row).await, 0, "{page}");
    let consents = admin
        .list_consents(v1::ListConsentsRequest {
            patient: me.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        consents.consents[0].status,
        v1::ConsentStatus::Withdrawn as i32,
        "{consents:?}"
    );

    // A block of an organisation through the form, then revoked.
    browser
        .click("#block-kind option[value=organisation]")
        .await;
    browser.type_into("#block-target", &other).await;
    browser
        .click("form[aria-labelledby=block-add] button")
        .await;
    let page = browser.wait_for("Sperringen er lagt til.").await;
    assert!(
        page.contains(&format!(
            "Organisasjonsnummer {other} – kan brytes med nødrett"
        )),
        "{page}"
    );
    let blocks = admin
        .list_blocks(v1::ListBlocksRequest {
            patient: me.clone(),
            in_force_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .blocks;
    let added = blocks
        .iter()
        .find(|b| b.target == other)
        .expect("the block is in force");
    assert_eq!(
        added.registered_by.as_ref().map(|a| a.id.as_str()),
        Some(me.as_str())
    );
    let row = format!("#block-{}", added.id);
    browser.click(&format!("{row} button")).await;
    browser.wait_for("Sperringen er opphevet.").await;
    assert_eq!(browser.count(&row).await, 0);
    // A reservation, then withdrawn.
    browser.type_into("#reserve-service", "kjernejournal").await;
    browser
        .click("form[aria-labelledby=reserve-add] button")
        .await;
    browser.wait_for("Reservasjonen er registrert.").await;
    assert_eq!(browser.count("#reservation-kjernejournal").await, 1);
    browser.click("#reservation-kjernejournal button").await;
    browser.wait_for("Reservasjonen er trukket.").await;
    assert_eq!(browser.count("#reservation-kjernejournal").await, 0);
    // A block of a malformed HPR number: refused by the registry, the reason shown, nothing
    // changed.
    browser.type_into("#block-target", "not-a-number").await;
    browser
        .click("form[aria-labelledby=block-add] button")
        .await;
    let page = browser.wait_for("Ingenting ble endret.").await;
    assert!(page.contains("role=\"alert\""), "{page}");
    let blocks = admin
        .list_blocks(v1::ListBlocksRequest {
            patient: me.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .blocks;
    assert!(
        blocks.iter().all(|b| b.target != "not-a-number"),
        "{blocks:?}"
    );
    browser.goto(&format!("{base}/innsyn")).await;
    let page = browser.wait_for("Personer du representerer").await;

    // The parent's view of whom they represent: the 10-year-old, not the 17-year-old.
    let child_masked = format!("{} *****", &child[..6]);
    let teen_masked = format!("{} *****", &teen[..6]);
    assert!(page.contains(&child_masked), "{page}");
    assert!(!page.contains(&teen_masked), "{page}");
    let young_masked = format!("{} *****", &young_teen[..6]);
    assert!(
        page.contains(&format!(
            "{young_masked} (foreldreansvar): du representerer personen nå bare for"
        )),
        "{page}"
    );
    assert_eq!(browser.count("#represented ~ ul a").await, 1, "{page}");
    // The list is by national id: the 13-year-old (no link) may come first.
    let child_index = usize::from(young_teen < child);
    browser.click("#represented ~ ul a").await;
    let page = browser.wait_for("<h1>Innsyn for").await;
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/innsyn/for/{child_index}")),
        "{page}"
    );
    assert!(
        page.contains(&format!("<h1>Innsyn for {child_masked}</h1>")),
        "{page}"
    );
    assert!(
        page.contains("Du ser dette fordi du representerer personen nå."),
        "{page}"
    );
    // Acting for the child: a reservation on the child's page, in the child's records,
    // audited as the parent's.
    browser.type_into("#reserve-service", "kjernejournal").await;
    browser
        .click("form[aria-labelledby=reserve-add] button")
        .await;
    browser.wait_for("Reservasjonen er registrert.").await;
    assert!(
        browser
            .url()
            .await
            .contains(&format!("/innsyn/for/{child_index}?done=reserve"))
    );
    let checked = admin
        .check_reservation(v1::CheckReservationRequest {
            patient: child.clone(),
            service: "kjernejournal".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(checked.reserved, "{checked:?}");
    let log = admin
        .query_audit(v1::QueryAuditRequest {
            patient: child.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        log.events
            .iter()
            .any(|e| e.actor == format!("citizen:{me}") && e.action == "reservation.write"),
        "{:?}",
        log.events
    );
    browser.screenshot("innsyn-child").await;
    // No second person to see for.
    browser
        .goto(&format!("{base}/innsyn/for/{}", 1 - child_index))
        .await;
    browser.wait_for("men ikke for innsyn i loggen").await;
    browser.goto(&format!("{base}/innsyn/for/2")).await;
    browser
        .wait_for("Du representerer ingen slik person nå.")
        .await;

    // In English.
    browser.goto(&format!("{base}/innsyn?lang=en")).await;
    let page = browser.source().await;
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("<h1>Who has seen my data?</h1>"), "{page}");
    assert!(page.contains("No new notifications."), "{page}");
    assert!(
        page.contains("Ola Nordlege (health personnel, HPR number 7654321)"),
        "{page}"
    );
    browser.screenshot("innsyn-en").await;

    // Logging out ends the session: the cookie's token is revoked in the cluster too.
    let cookie = browser.call("GET", "/cookie/innsyn_session", None).await;
    let token = cookie["value"].as_str().unwrap().to_owned();
    let as_citizen = |token: &str| {
        kartotek_client::KartotekClient::with_tokens(
            kartotek_client::ClientConfig {
                endpoints: cluster.addrs(),
                ..kartotek_client::ClientConfig::default()
            },
            std::sync::Arc::new(kartotek_client::StaticToken::new(token).unwrap()),
        )
        .unwrap()
    };
    let own_blocks = v1::ListBlocksRequest {
        patient: me.clone(),
        ..Default::default()
    };
    as_citizen(&token)
        .list_blocks(own_blocks.clone())
        .await
        .expect("the session's token works before logout");
    browser.click("form[action='/innsyn/logout'] button").await;
    browser.wait_for("id=\"pid\"").await;
    let refused = as_citizen(&token)
        .list_blocks(own_blocks)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("revoked"), "{refused}");
}
