//! `keepwatch report`: the period's sessions, commands, refusals and state as JSON, and as
//! one HTML file with inline SVG charts, opened in headless Chromium (the page renders its
//! charts offline, and a screenshot is taken).

use std::process::Command;

use crate::support::*;

#[test]
fn the_report_counts_the_period_and_renders_offline_in_chromium() {
    let env = TestEnv::new().target("web01").start();
    for n in 1..=2 {
        let out = env.ssh("alice@web01").arg(format!("echo report-{n}; uptime")).output().unwrap();
        assert!(out.status.success());
    }
    let refused = env.ssh("mallory@web01").arg("true").output().unwrap();
    assert!(!refused.status.success());
    for s in env.sealed_sessions(2) {
        env.wait_indexed(s["id"].as_str().unwrap());
    }

    let data = env.json(&["report", "--since", "1d", "--json"]);
    assert_eq!(data["sessions"]["total"], 2, "{data}");
    assert_eq!(data["sessions"]["per_person"][0]["name"], "alice");
    assert_eq!(data["sessions"]["per_target"][0]["count"], 2);
    let commands: Vec<&str> = data["top_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(commands.iter().any(|c| c.starts_with("echo report-")), "{data}");
    let login = data["incidents"].as_array().unwrap().iter().find(|i| i["name"] == "login_refused");
    assert!(login.unwrap()["count"].as_u64().unwrap() >= 1, "{data}");

    let page = env.dir().join("report.html");
    env.kw_ok(&["report", "--since", "1d", "-o", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));

    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(chromium.exists(), "chromium missing: scripts/test.sh installs it");
    let url = format!("file://{}", page.display());
    let chrome = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1600"])
            .arg(format!("--user-data-dir={}", env.dir().join("chromium").display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chrome(&["--dump-dom"]);
    assert!(dom.contains("<span class=\"n\" id=\"sessions-total\">2</span>"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 6, "every chart rendered: {dom}");
    assert!(dom.contains("aria-label=\"Sessions per person\""));
    // The console serves the same page and data to auditors (audited as report_viewed).
    let token = env.kw_ok(&["token", "create", "--name", "r", "--role", "auditor"]);
    let bearer = format!("Bearer {}", token.trim());
    let auth = [("Authorization", bearer.as_str())];
    let (status, head, body) =
        http(&env, "GET", "/api/v1/report?since=1d&format=html", &auth, None);
    assert_eq!(status, 200, "{body}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; style-src 'unsafe-inline'")
    );
    assert_eq!(body.matches("<svg").count(), 6);
    let (status, _, body) = http(&env, "GET", "/api/v1/report?since=1d", &auth, None);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["sessions"]["total"], 2);
    let (status, ..) = http(&env, "GET", "/api/v1/report?since=1x", &auth, None);
    assert_eq!(status, 400);
    // Each read is a look at recorded content: two from the CLI (JSON, HTML), two through the
    // API, each naming its period; the refused one is not.
    let viewed = env.json(&["audit", "--action", "report_viewed", "--json"]);
    let viewed = viewed.as_array().unwrap();
    assert_eq!(viewed.len(), 4, "{viewed:?}");
    assert!(viewed.iter().all(|e| e["detail"].as_str().unwrap().contains("\"since\":\"1d\"")));
    assert_eq!(viewed.iter().filter(|e| e["actor"] == "token:r").count(), 2, "{viewed:?}");
    let user =
        env.kw_ok(&["token", "create", "--name", "u", "--role", "user", "--person", "alice"]);
    let user = format!("Bearer {}", user.trim());
    let (status, ..) = http(&env, "GET", "/api/v1/report", &[("Authorization", &user)], None);
    assert_eq!(status, 403);
    let shot = env.dir().join("report.png");
    chrome(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of {} bytes",
        png.len()
    );
}
