//! A real headless Chromium, driven over WebDriver (Debian's `chromium` and `chromium-driver`).
//!
//! Chromium is started here, as the test's own child, with a fresh profile in a temp folder
//! and the flags that keep it off the network (no QUIC, no background fetches, no updates,
//! no sync); ChromeDriver attaches to it through its DevTools port (`debuggerAddress`), so
//! both are this test's processes, killed by their handles when the [`Browser`] is dropped,
//! also when the test fails. WebDriver is plain HTTP and JSON, spoken with the same few lines
//! of std HTTP as the rest of the test: no crate and no download.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use super::common::{POLL_INTERVAL, Proc, Stream, TIMEOUT};

/// The flags Chromium runs with: headless, without a sandbox (CI runs as root, where
/// Chromium's sandbox refuses to start), and touching nothing but the page it is sent to.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
];

/// A headless Chromium and the ChromeDriver session that drives it.
pub struct Browser {
    driver_addr: String,
    session: String,
    // Dropped after `drop` below ended the session: killed by their handles.
    _chromium: Proc,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser, or prints why the calling test skips and gives `None`.
    pub fn start_or_skip() -> Option<Browser> {
        Browser::start().map_err(|why| eprintln!("skipping the browser test: {why}")).ok()
    }

    /// Starts Chromium and ChromeDriver, or says why it cannot (not installed, or Chromium
    /// will not run here): the caller skips then.
    pub fn start() -> Result<Browser, String> {
        let chromium = on_path("chromium").ok_or("chromium is not installed (.ci/run installs it as root)")?;
        let driver =
            on_path("chromedriver").ok_or("chromedriver is not installed (Debian's chromium-driver; .ci/run installs it as root)")?;
        let profile = tempfile::tempdir().map_err(|e| format!("no temp folder for the profile: {e}"))?;
        let mut command = Command::new(chromium);
        command.args(FLAGS).arg(format!("--user-data-dir={}", profile.path().display())).arg("about:blank");
        let mut chromium = Proc::spawn_command("chromium", command);
        let devtools = devtools_port(&mut chromium)?;
        let mut command = Command::new(driver);
        command.arg("--port=0");
        let mut driver = Proc::spawn_command("chromedriver", command);
        let line = driver.expect("started successfully on port");
        let port = line.trim_end_matches('.').rsplit(' ').next().unwrap_or_default().to_string();
        let driver_addr = format!("127.0.0.1:{port}");
        let options =
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"debuggerAddress": format!("127.0.0.1:{devtools}")}}}});
        let answer = webdriver(&driver_addr, "POST", "/session", Some(&options));
        let session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {answer}")).to_string();
        Ok(Browser { driver_addr, session, _chromium: chromium, _driver: driver, _profile: profile })
    }

    /// Opens `url` in the tab, waiting for it to load.
    pub fn open(&self, url: &str) {
        self.call("POST", "url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body: `return …`) in the page; its result.
    pub fn run(&self, script: &str) -> Value {
        self.call("POST", "execute/sync", Some(&json!({ "script": script, "args": [] })))
    }

    /// Waits until `script` returns true in the page, at most [`TIMEOUT`]; panics with what
    /// the page shows otherwise. (A page changes with no signal the test can wait on: it is
    /// looked at every [`POLL_INTERVAL`].)
    pub fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.run(script) != Value::Bool(true) {
            let shown = self.run("return document.body.innerText");
            assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}; the page shows:\n{}", shown.as_str().unwrap_or_default());
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        webdriver(&self.driver_addr, method, &format!("/session/{}/{path}", self.session), body)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Let go of the session (best effort); the processes are killed by their guards next.
        let _ = super::request(&self.driver_addr, "DELETE", &format!("/session/{}", self.session), None);
    }
}

/// One WebDriver command; its `value`. Panics on an error answer, with the error.
fn webdriver(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (status, text) = super::request(addr, method, path, body.map(Value::to_string).as_deref());
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {status} {text}"));
    assert!(status.contains(" 200 "), "{method} {path}: {status} {answer}");
    answer["value"].clone()
}

/// The port Chromium's DevTools listen on, from the line it prints on stderr once it serves
/// (`DevTools listening on ws://127.0.0.1:PORT/…`); an error if Chromium exits first (it
/// cannot run here).
fn devtools_port(chromium: &mut Proc) -> Result<u16, String> {
    const SAYS: &str = "DevTools listening on ws://127.0.0.1:";
    match chromium.wait_line(Stream::Err, |l| l.contains(SAYS), TIMEOUT) {
        Ok(line) => {
            let rest = line.split_once(SAYS).map_or("", |(_, rest)| rest);
            rest.split('/').next().and_then(|port| port.parse().ok()).ok_or_else(|| format!("no port in {line:?}"))
        }
        Err(why) => {
            assert!(!chromium.is_running(), "chromium runs but never opened its DevTools port; it said:\n{}", chromium.transcript());
            let said = chromium.said();
            Err(format!("chromium cannot run here ({why}): {}", said.last().map_or("it said nothing", String::as_str)))
        }
    }
}

/// `name` as found on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}
