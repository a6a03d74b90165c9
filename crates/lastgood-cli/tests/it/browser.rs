//! The dashboard in a real browser: Debian's Chromium, headless, driven over
//! WebDriver by Debian's chromedriver (fantoccini, plain HTTP on loopback; nothing is
//! downloaded). A person's path through an incident: log in through the printed URL,
//! read the overview and the timeline, open the last good release, read its plan and
//! SQL, type the environment's name (wrong, then right), roll back, and watch the
//! operation finish live without reloading. Each page is saved as a PNG under
//! `target/screenshots/` (CI artifacts, to look at; nothing compares pixels).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use lastgood_testkit::serve::{Server, wait_until};
use lastgood_testkit::{Check, Config, Database, TestEnv, free_port};

use crate::{BIN, deploy_ok};

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/services.sh installs it)");
        let up = wait_until(20, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "chromedriver did not listen on {port}");
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir target/screenshots");
    dir
}

/// The whole page (the window grows to its height, up to 4,000 pixels), as a PNG.
async fn shot(c: &Client, name: &str) {
    let height = c.execute("return document.documentElement.scrollHeight", vec![]).await.ok().and_then(|h| h.as_u64());
    let _ = c.set_window_size(1280, height.unwrap_or(900).clamp(600, 4000) as u32 + 120).await;
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits for an element; on a timeout, saves what the browser shows and says what it was.
async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    match c.wait().at_most(Duration::from_secs(secs)).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => {
            shot(c, "99-failure").await;
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!("no `{css}` after {secs} s ({e}) at {url}:\n{}", text(c).await)
        }
    }
}

async fn text(c: &Client) -> String {
    c.find(Locator::Css("body")).await.expect("body").text().await.expect("text")
}

/// v1 (a table) and v2 (an index on it), deployed on SQLite. Once the file `slow`
/// exists, the checks take 4 s, so the rollback runs long enough to be watched.
fn incident_env() -> TestEnv {
    let mut env = TestEnv::new(BIN);
    let slow = env.path().join("slow");
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.commit_version(
        "v2",
        &[
            ("migrations/2_t_a/up.sql", "CREATE INDEX t_a ON t (a);\n"),
            ("migrations/2_t_a/down.sql", "DROP INDEX t_a;\n"),
        ],
    );
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")).check(
        Check::command(["sh", "-c", &format!("[ ! -e '{}' ] || sleep 4", slow.display())]).key("timeout", "30s"),
    ));
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    // The way back goes down a migration: it is ready once rehearsed (issue 19).
    env.run(&["db", "rehearse", "production"]).expect(0);
    env.write("slow", "");
    env
}

#[test]
fn a_person_rolls_back_from_the_dashboard_in_chromium_and_watches_it_finish() {
    let env = incident_env();
    let server = Server::start(&env, &["--allow-writes"]);
    let driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session with chromium");

        // Log in through the printed URL: the page moves on to `/` by itself.
        c.goto(&format!("{}&user=alice", server.login_url)).await.unwrap();
        c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("table")).await.expect("the overview");
        assert_eq!(c.current_url().await.unwrap().path(), "/");
        let home = text(&c).await;
        assert!(home.contains("signed in as alice") && home.contains("rollbacks enabled"), "{home}");
        assert!(home.contains("#2 v2") && home.contains("ready"), "{home}");
        shot(&c, "01-overview").await;

        // The timeline: newest first, current and last good marked.
        c.find(Locator::Css("a[href='/env/production']")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("tr.current")).await.unwrap();
        let current = c.find(Locator::Css("tr.current")).await.unwrap().text().await.unwrap();
        assert!(current.contains("#2") && current.contains("current") && current.contains("Release v2"), "{current}");
        let good = c.find(Locator::Css("tr.last-good")).await.unwrap().text().await.unwrap();
        assert!(good.contains("#1") && good.contains("last good"), "{good}");
        shot(&c, "02-timeline").await;

        // The last good release: the diff, the plan and its exact SQL.
        c.find(Locator::Css("tr.last-good a")).await.unwrap().click().await.unwrap();
        let sql = c.wait().for_element(Locator::Css("pre.sql")).await.unwrap().text().await.unwrap();
        assert!(sql.contains("DROP INDEX t_a"), "{sql}");
        let page = text(&c).await;
        assert!(page.contains("Rollback plan to #1") && page.contains("migrate-down"), "{page}");
        shot(&c, "03-release-plan").await;

        // The wrong name typed: refused (422), nothing changes, the form comes back.
        c.find(Locator::Css("input[name=reason]")).await.unwrap().send_keys("v2's index slows checkout").await.unwrap();
        c.find(Locator::Css("input[name=confirm_env]")).await.unwrap().send_keys("prod").await.unwrap();
        c.find(Locator::Css("form.rollback button")).await.unwrap().click().await.unwrap();
        let refused = wait_for(&c, "div.rejected", 30).await.text().await.unwrap();
        assert!(refused.contains("type the environment's name"), "{refused}");
        assert_eq!(env.status()["current"]["id"], 2, "nothing changed");
        shot(&c, "04-wrong-name-refused").await;

        // The right name: the operation's page, which follows it live to the end.
        let reason = c.find(Locator::Css("input[name=reason]")).await.unwrap();
        assert_eq!(reason.prop("value").await.unwrap().as_deref(), Some("v2's index slows checkout"), "kept");
        c.find(Locator::Css("input[name=confirm_env]")).await.unwrap().send_keys("production").await.unwrap();
        c.find(Locator::Css("form.rollback button")).await.unwrap().click().await.unwrap();
        wait_for(&c, "#operation", 30).await;
        let path = c.current_url().await.unwrap().path().to_owned();
        assert!(path.starts_with("/operation/"), "{path}");
        let outcome = c.find(Locator::Css("#operation")).await.unwrap().attr("data-outcome").await.unwrap();
        assert_eq!(outcome.as_deref(), Some("running"), "the page opened while the rollback ran");
        shot(&c, "05-operation-running").await;
        // No navigation from here: the page's own script updates it and shows the report.
        let report = wait_for(&c, "pre.report", 60).await.text().await.unwrap();
        assert!(report.contains("web:alice@") && report.contains("v2's index slows checkout"), "{report}");
        let badge = c.find(Locator::Css("#outcome")).await.unwrap().text().await.unwrap();
        assert_eq!(badge, "succeeded");
        shot(&c, "06-operation-finished").await;

        // The timeline after: #1 is current, #2 bad.
        c.goto(&format!("http://{}/env/production", server.addr)).await.unwrap();
        let current = c.wait().for_element(Locator::Css("tr.current")).await.unwrap().text().await.unwrap();
        assert!(current.contains("#1"), "{current}");
        shot(&c, "07-timeline-after").await;
        c.close().await.unwrap();
    });
    assert_eq!(env.status()["current"]["id"], 1);
    assert_eq!(env.state_of(2), "bad");
}
