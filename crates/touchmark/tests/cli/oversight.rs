//! Oversight with real processes (design.md §9): a webhook delivery that survives a killed
//! server, and the dashboard driven in a real headless browser (Playwright and Debian's
//! chromium) while `station run` provisions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use touchmark_core::oversight::CreateWebhook;

use crate::kit::{self, Served};

fn touchmark(dir: &std::path::Path) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .current_dir(dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts HTTP requests on `listener` in a thread, answers 200, and sends each request's
/// (head, body) on the channel.
fn receive(listener: TcpListener) -> mpsc::Receiver<(String, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    rx
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The server is killed (SIGKILL) after it raised an alert and before the webhook took its
/// delivery (nothing listens at its URL yet); started again, it delivers the alert, once,
/// under the id it had before the crash.
#[tokio::test]
async fn a_webhook_delivery_survives_a_killed_server() {
    let (tmp, data) = kit::tempdir();
    let token = kit::init(&data);
    let served = Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    kit::setup_order(&admin, "PO-1", 1).await;
    let port = free_port();
    let secret = tmp.path().join("hook.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let out = touchmark(tmp.path())
        .args([
            "webhook",
            "add",
            "--url",
            &format!("http://127.0.0.1:{port}/hook"),
        ])
        .arg("--secret-file")
        .arg(&secret)
        .args([
            "--kind",
            "beyond_quota",
            "--json",
            "--server",
            &served.url,
            "--token",
            &token,
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    kit::assert_success(&out, "webhook add");
    let hooks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hook = hooks[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(hooks[0]["kinds"][0], "beyond_quota");
    // A bad secret is refused with a clear error, and no webhook is added.
    let e = admin
        .create_webhook(&CreateWebhook {
            url: "http://127.0.0.1:1/x".into(),
            secret: "hunter2".into(),
            kinds: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(touchmark_client::ErrorCode::InvalidRequest));
    assert_eq!(admin.webhooks().await.unwrap().len(), 1);

    // Quota 1: the second unit is refused beyond the quota, which raises the alert.
    let station = kit::enroll(&admin, &served.url, &data, "cm", "line-1").await;
    let client = kit::station_client(&served.url, &data, &station);
    client
        .provision("PO-1", &kit::Unit::new("SN-1".into()).request())
        .await
        .unwrap();
    let refused = client
        .provision("PO-1", &kit::Unit::new("SN-2".into()).request())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(touchmark_client::ErrorCode::QuotaExhausted)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let alert = loop {
        let alerts = admin.alerts(false).await.unwrap();
        if let Some(a) = alerts.into_iter().find(|a| a.kind == "beyond_quota") {
            break a;
        }
        assert!(Instant::now() < deadline, "no beyond_quota alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the first attempt fail (nothing listens), then kill the server outright.
    tokio::time::sleep(Duration::from_millis(600)).await;
    served.kill();

    let received = receive(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let again = Served::start(&data);
    let (head, body) = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the delivery after the restart");
    assert_eq!(
        header(&head, "webhook-id"),
        Some(format!("msg_{}_{hook}", alert.id).as_str())
    );
    assert!(header(&head, "webhook-signature").is_some_and(|s| s.starts_with("v1,")));
    assert!(header(&head, "webhook-timestamp").is_some());
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"]["id"], alert.id.as_str());
    assert_eq!(body["data"]["kind"], "beyond_quota");
    assert_eq!(body["data"]["evidence"]["serial"], "SN-2");
    // Delivered: it is not sent again.
    assert!(received.recv_timeout(Duration::from_secs(2)).is_err());
    drop(again);
}

/// The browser's side of the dashboard test, run by Playwright (PyPI) with Debian's chromium.
/// Protocol on its standard streams: it prints `READY <count>` once logged in and live; for
/// each line `ISSUED <n>` it reads, it waits until the live count shows `<count> + n`, within
/// the time the line allows, and prints `SEEN <n> <ms>`; then it acknowledges the alert,
/// finds the unit, triages the vulnerability report, and prints `DONE`.
const BROWSER: &str = r##"
import json, sys, time
from playwright.sync_api import sync_playwright, expect

base, token, chromium, serial, alert_id, report_id = sys.argv[1:7]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    sizes = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())) if r.url.startswith(base + "/ui") and r.request.method == "GET" and "/ui/events" not in r.url else None)
    first = page.goto(base + "/ui")
    csp = first.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", "tm_wrong")
    page.click("#login-button")
    expect(page.locator("#login-error")).to_contain_text("unauthorized")
    page.fill("#token", token)
    page.click("#login-button")
    expect(page.locator("#app")).to_be_visible()
    cookie = [c for c in context.cookies() if c["name"] == "tm_session"][0]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    assert page.evaluate("document.cookie") == "", "the session cookie is readable from script"
    # A state change without the CSRF token is refused.
    status = page.evaluate("fetch('/v1/alerts/' + %s + '/acknowledge', {method: 'POST'}).then(r => r.status)" % json.dumps(alert_id))
    assert status == 403, status
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#orders tbody tr")).to_have_count(1)
    start = int(page.text_content("#live-issued"))
    total = sum(sizes.values())
    print("READY", start, total, flush=True)
    for line in sys.stdin:
        word, *rest = line.split()
        if word != "ISSUED":
            break
        n, within_ms = int(rest[0]), int(rest[1])
        t0 = time.monotonic()
        expect(page.locator("#live-issued")).to_have_text(str(start + n), timeout=within_ms)
        print("SEEN", n, int((time.monotonic() - t0) * 1000), flush=True)
    # The alert, acknowledged from the page.
    row = page.locator(f'tr.alert[data-alert-id="{alert_id}"]')
    expect(row.locator("td.state")).to_have_text("open")
    row.locator("button.ack").click()
    expect(row.locator("td.state")).to_have_text("acknowledged")
    # The unit, found by its serial, with its history.
    page.fill("#serial", serial)
    page.click("#search-button")
    expect(page.locator("#history-summary")).to_contain_text(serial)
    expect(page.locator("tr.history-certificate-issued")).to_have_count(1)
    # Its own attempt, and its clone's (refused serial_conflict), both kept.
    expect(page.locator("tr.history-test-attempt")).to_have_count(2)
    # The order's report, with its charts.
    page.click("#orders tbody tr")
    expect(page.locator("#report")).to_be_visible()
    expect(page.locator('[data-measurement="rf_power/tx_dbm"] svg')).to_have_count(2)
    # The vulnerability report a researcher sent, its markup shown as text and never run,
    # triaged from the page.
    expect(page.locator("#vulns")).to_be_visible()
    report = page.locator(f'tr.report[data-report-id="{report_id}"]')
    expect(report.locator("td.state")).to_have_text("received")
    expect(report.locator("td.description")).to_contain_text("<img id=pwned")
    assert page.locator("#pwned").count() == 0, "the report's markup became an element"
    assert page.evaluate("window.pwned") is None, "the report's script ran"
    expect(report.locator("select.next-state option")).to_have_count(1)
    report.locator("select.next-state").select_option("triaged")
    report.locator("button.move").click()
    expect(report.locator("td.state")).to_have_text("triaged")
    browser.close()
    print("DONE", flush=True)
"##;

/// The dashboard in Debian's chromium, driven by Playwright: log in with a token (the session
/// is an HttpOnly, SameSite cookie; the page is under a strict CSP; a change without the CSRF
/// token is refused), watch the live count rise while `station run` provisions (each issuance
/// shown within a second), acknowledge an alert, find a unit by its serial, triage a
/// vulnerability report whose markup is shown as text. The first load is under 300 KB.
#[test]
#[cfg_attr(
    not(tm_playwright),
    ignore = "needs Playwright (PyPI) and chromium: set TOUCHMARK_TEST_PLAYWRIGHT_PYTHON and TOUCHMARK_TEST_CHROMIUM"
)]
fn the_dashboard_works_in_a_real_browser() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let token = kit::init(&data);
    let served = Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    runtime.block_on(kit::setup_order(&admin, "PO-1", 100));
    let station = crate::sim::enroll_with_cli(work, &served, &data, &token, "line-1");
    // One unit first, and a clone of it, for an alert to acknowledge.
    let run = |units: &str, first: &str, extra: &[&str]| {
        let out = touchmark(work)
            .args([
                "station", "run", "--order", "PO-1", "--units", units, "--first", first,
            ])
            .args(extra)
            .args(["--quiet", "--json", "--dir"])
            .arg(&station)
            .output()
            .unwrap();
        kit::assert_success(&out, "station run");
    };
    run("1", "1", &["--clone-serials", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let alert = loop {
        let alerts = runtime.block_on(admin.alerts(false)).unwrap();
        if let Some(a) = alerts.into_iter().find(|a| a.kind == "clone_suspect") {
            break a;
        }
        assert!(Instant::now() < deadline, "no clone_suspect alert");
        std::thread::sleep(Duration::from_millis(100));
    };

    // A report with markup and script in it, sent to the public intake.
    let report = runtime
        .block_on(
            admin.submit_vulnerability_report(&touchmark_core::api::SubmitReport {
                product: None,
                version: Some("1.0.0".into()),
                description: Some(
                    "<img id=pwned src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>"
                        .into(),
                ),
                encrypted: None,
                cvss: None,
                contact: None,
            }),
        )
        .unwrap();

    let python = touchmark_testenv::tool(&touchmark_testenv::PLAYWRIGHT);
    let chromium = touchmark_testenv::tool(&touchmark_testenv::CHROMIUM);
    let mut browser = Command::new(python)
        .args(["-c", BROWSER, &served.url, &token])
        .arg(&chromium)
        .args(["SN-000001", &alert.id, &report.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_browser = browser.stdin.take().unwrap();
    let mut from_browser = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut next = || {
        from_browser
            .next()
            .expect("a line from the browser")
            .unwrap()
    };
    let ready = next();
    let words: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"READY"), "{ready}");
    assert_eq!(words[1], "1", "one unit issued before");
    let first_load: u64 = words[2].parse().unwrap();
    assert!(
        first_load > 10_000 && first_load < 300_000,
        "first load {first_load} bytes"
    );

    // One unit at a time: each is on the page within a second of its issuance.
    for n in 1..=3u32 {
        run("1", &(1 + n).to_string(), &[]);
        writeln!(to_browser, "ISSUED {n} 1000").unwrap();
        let seen = next();
        assert!(seen.starts_with(&format!("SEEN {n} ")), "{seen}");
    }
    // A whole line in the background: the count keeps rising while it runs.
    let mut line = touchmark(work)
        .args([
            "station", "run", "--order", "PO-1", "--units", "20", "--first", "10", "--rate", "4",
        ])
        .args(["--quiet", "--dir"])
        .arg(&station)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(to_browser, "ISSUED 6 10000").unwrap();
    let seen = next();
    assert!(seen.starts_with("SEEN 6 "), "{seen}");
    assert!(
        line.try_wait().unwrap().is_none(),
        "the line finished before the page saw it"
    );
    writeln!(to_browser, "ISSUED 23 10000").unwrap();
    let seen = next();
    assert!(seen.starts_with("SEEN 23 "), "{seen}");
    assert!(line.wait().unwrap().success());
    writeln!(to_browser, "END").unwrap();
    assert_eq!(next(), "DONE");
    assert!(browser.wait().unwrap().success());

    // The acknowledgement is the page's, logged under the admin token's id.
    let alert = runtime.block_on(admin.alert(&alert.id)).unwrap();
    assert_eq!(alert.state, "acknowledged");
    let events = runtime.block_on(kit::all_events(&admin));
    let ack = events
        .iter()
        .find(|e| e.kind == "alert.acknowledged")
        .expect("the acknowledgement is logged");
    assert!(ack.canonical.contains(&alert.id), "{}", ack.canonical);
    // The triage is the page's, logged.
    let triaged = runtime.block_on(admin.vuln_report(&report.id)).unwrap();
    assert_eq!(triaged.state, "triaged");
    let moved = events
        .iter()
        .find(|e| e.kind == "vuln.state_changed")
        .expect("the triage is logged");
    assert!(moved.canonical.contains(&report.id), "{}", moved.canonical);
}
