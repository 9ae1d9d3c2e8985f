//! The web console in a real headless Chromium (over WebDriver), against the real backend
//! and Pebble: sign-in, a wrong token, enabling names (one refused) and following issuance
//! live, renewing, disabling behind a confirmation, the overview's counts and its chart with
//! a text alternative, and a CA problem full of markup shown as text. Every test leaves
//! screenshots in `target/console-screenshots/`.
//!
//! The console must be built beside the backend binary (`cargo xtask build`).

use std::net::SocketAddr;
use std::time::Duration;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::browser::Browser;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::process::eventually;
use acme_edge_tests::stack::Stack;
use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Issuance through Pebble, Envoy and the filter on this busy machine.
const ISSUE_DEADLINE: Duration = Duration::from_secs(120);

/// What the fake web server answers to Pebble's HTTP-01 request: Pebble quotes it in the
/// problem document, so the console is handed markup that would run if it were parsed.
const MARKUP: &str = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>\
                      <b id=bold>bold</b>";

fn console_url(backend: &Backend) -> String {
    format!("{}/console/", backend.admin_url())
}

/// The console is served (built beside the backend binary) with its policy.
async fn check_served(backend: &Backend) -> Result<()> {
    let r = reqwest::get(console_url(backend)).await?;
    if r.status() != 200 {
        bail!(
            "the backend does not serve the console ({}): build it with cargo xtask build",
            r.status()
        );
    }
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for directive in ["default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'"] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive}");
    }
    Ok(())
}

async fn sign_in(browser: &Browser, backend: &Backend, token: &str) -> Result<()> {
    browser.goto(&console_url(backend)).await?;
    browser.type_into("#token", token).await?;
    browser
        .click("form[data-action='sign-in'] button[type='submit']")
        .await
}

async fn signed_in(browser: &Browser, backend: &Backend) -> Result<()> {
    sign_in(browser, backend, backend.token()).await?;
    match browser.find("#rows").await {
        Ok(_) => Ok(()),
        Err(e) => {
            let log = browser.console_log().await;
            let body = browser.script("return document.body.innerText").await;
            Err(e.context(format!("page: {body:?}\nbrowser console:\n{log}")))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_right_one_kept_in_session_storage() -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    check_served(&backend).await?;
    let browser = Browser::start().await?;

    sign_in(&browser, &backend, "wrong-token-0123456789abcdef").await?;
    browser
        .wait_text("#signin-error", |t| t.contains("Wrong token"))
        .await?;
    browser.screenshot("wrong-token").await?;
    let kept = browser.script("return sessionStorage.length").await?;
    assert_eq!(kept, 0, "a refused token must not be kept");
    assert!(browser.find_now("#rows").await?.is_none());

    sign_in(&browser, &backend, backend.token()).await?;
    browser.find("#rows").await?;
    let where_kept = browser
        .script(
            "return [Object.values(sessionStorage).length, document.cookie, location.href, \
             localStorage.length]",
        )
        .await?;
    assert_eq!(where_kept[0], 1, "{where_kept}");
    assert_eq!(where_kept[1], "", "no cookie: {where_kept}");
    let href = where_kept[2].as_str().unwrap_or_default();
    assert!(!href.contains(backend.token()), "token in the URL: {href}");
    assert_eq!(where_kept[3], 0, "{where_kept}");
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_follow_renew_and_disable() -> Result<()> {
    let stack = Stack::start().await?;
    let backend = &stack.backend;
    check_served(backend).await?;
    let browser = Browser::start().await?;
    signed_in(&browser, backend).await?;

    let good = "console.acme-edge.test";
    let bad = "not a name!";
    browser.click("a[href='#/enable']").await?;
    browser
        .type_into("#names", &format!("{good}\n{bad}\n"))
        .await?;
    browser
        .click("form[data-action='enable'] button[type='submit']")
        .await?;
    let refused = browser
        .wait_text("li[data-state='refused']", |t| t.contains("refused"))
        .await?;
    assert!(refused.contains(bad), "{refused}");
    assert!(
        refused.contains("invalid_domain"),
        "the API's reason: {refused}"
    );
    // Followed without reloading the page until issued.
    let issued = format!("li[data-name='{good}'][data-state='issued']");
    eventually(ISSUE_DEADLINE, || async {
        browser.find_now(&issued).await.ok().flatten()
    })
    .await
    .with_context(|| format!("{good} never shown issued\n{}", stack.logs()))?;
    browser.screenshot("enable").await?;

    browser.click(&format!("li[data-name='{good}'] a")).await?;
    browser
        .find("section[data-kind='details'][data-state='issued']")
        .await?;
    browser
        .wait_text("#certificate", |t| {
            t.contains("Serial") || t.contains("Not available")
        })
        .await?;
    browser.screenshot("domain-page").await?;

    let before = backend.certificate_pem(good).await?;
    browser.click("button[data-action='renew']").await?;
    browser
        .wait_text("#status", |t| t.contains("Renewal requested"))
        .await?;
    eventually(ISSUE_DEADLINE, || async {
        let now = backend.certificate_pem(good).await.ok()?;
        (now != before).then_some(())
    })
    .await
    .context("renewing from the console gave no new certificate")?;

    browser.click("button[data-action='disable-ask']").await?;
    let question = browser.text("#confirm").await?;
    assert!(question.contains(&format!("Disable {good}?")), "{question}");
    // Asking is not doing.
    assert_ne!(backend.domain(good).await?["state"], "disabled");
    browser.click("#disable-confirm").await?;
    browser
        .find("section[data-kind='details'][data-state='disabled']")
        .await?;
    assert_eq!(backend.domain(good).await?["state"], "disabled");
    browser.screenshot("disabled").await?;

    browser.click("a[href='#/domains']").await?;
    browser
        .find(&format!("tr[data-name='{good}'][data-state='disabled']"))
        .await?;
    browser.screenshot("domain-list").await?;
    browser.close().await
}

/// Certificates valid this long expire within the overview's 30 days and its chart's weeks.
const SHORT_VALIDITY: Duration = Duration::from_secs(20 * 24 * 3600);

/// The `<dt>`/`<dd>` pairs of each section of the overview, by the id of its heading.
const OVERVIEW_FIGURES: &str = "const out = {};
    for (const s of document.querySelectorAll('#overview section')) {
      const pairs = {};
      for (const dt of s.querySelectorAll('dt')) {
        pairs[dt.textContent] = dt.nextElementSibling ? dt.nextElementSibling.textContent : null;
      }
      out[s.getAttribute('aria-labelledby')] = pairs;
    }
    return out;";

/// What the overview should show for `summary` (`GET /v1/summary`) and `capacity`
/// (`GET /v1/capacity`), in the page's terms.
fn expected_figures(
    summary: &serde_json::Value,
    capacity: &serde_json::Value,
) -> serde_json::Value {
    let f = |v: &serde_json::Value| format!("{:.0}", v.as_f64().unwrap_or(f64::NAN));
    let headroom = capacity["headroom_ratio"].as_f64().unwrap_or(f64::NAN) * 100.0;
    let spend = capacity["renewals_spend_budget"] == true;
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0).to_string();
    let mut states = serde_json::Map::new();
    states.insert("Total".into(), n(&summary["total"]).into());
    for state in ["pending", "validating", "issued", "failed", "disabled"] {
        states.insert(state.into(), n(&summary["states"][state]).into());
    }
    let e = &summary["expiring"];
    let mut failures = serde_json::Map::new();
    for f in summary["failures"].as_array().into_iter().flatten() {
        let reason = f["reason"].as_str().unwrap_or_default().to_owned();
        failures.insert(reason, n(&f["count"]).into());
    }
    serde_json::json!({
        "h-states": states,
        "h-expiring": {
            "Already expired": n(&e["expired"]),
            "Within 7 days": n(&e["within_7_days"]),
            "Within 14 days": n(&e["within_14_days"]),
            "Within 30 days": n(&e["within_30_days"]),
        },
        "h-failures": failures,
        "h-weeks": {},
        "h-capacity": {
            "Renewals needed a day": f(&capacity["renewals_per_day"]),
            "Orders allowed a day": f(&capacity["budget_per_day"]),
            "Renewals spend the budget": if spend { "yes" } else { "no" },
            "Headroom": format!("{headroom:.0} %"),
            "New names waiting": n(&capacity["new_names_waiting"]),
            // Pebble's certificates, renewals exempt: nothing at risk.
            "First day at risk": "none",
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_summary_and_a_labelled_chart() -> Result<()> {
    let stack = Stack::builder()
        .pebble(|p| p.certificate_validity(SHORT_VALIDITY))
        .start()
        .await?;
    let backend = &stack.backend;
    check_served(backend).await?;
    let names = [
        "a.overview.acme-edge.test",
        "b.overview.acme-edge.test",
        "c.overview.acme-edge.test",
    ];
    for name in names {
        backend.enable(name).await?;
    }
    for name in names {
        backend
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| stack.logs())?;
    }
    backend.disable(names[2]).await?;
    backend
        .wait_for_state(names[2], "disabled", ISSUE_DEADLINE)
        .await?;
    let url = format!("{}/v1/summary", backend.admin_url());
    let summary: serde_json::Value = backend.client().get(&url).send().await?.json().await?;
    let url = format!("{}/v1/capacity", backend.admin_url());
    let capacity: serde_json::Value = backend.client().get(&url).send().await?.json().await?;
    assert_eq!(
        capacity["first_day_at_risk"],
        serde_json::Value::Null,
        "{capacity}"
    );
    // The figures the page is compared with are not all zero.
    assert_eq!(summary["total"], 3, "{summary}");
    assert_eq!(summary["states"]["issued"], 2, "{summary}");
    assert_eq!(summary["states"]["disabled"], 1, "{summary}");
    let weeks: Vec<u64> = summary["expiry_weeks"]
        .as_array()
        .context("expiry_weeks")?
        .iter()
        .map(|w| w["count"].as_u64().unwrap_or(0))
        .collect();
    let expiring: u64 = weeks.iter().sum();
    assert!(
        expiring >= 2,
        "the issued certificates expire within the weeks shown: {summary}"
    );

    let browser = Browser::start().await?;
    signed_in(&browser, backend).await?;
    browser.click("a[href='#/overview']").await?;
    browser
        .find("#overview section[aria-labelledby='h-capacity']")
        .await?;
    let mut shown = browser.script(OVERVIEW_FIGURES).await?;
    // The earliest expiry is shown as a date and how far it is ("… UTC (in 19 d)").
    let earliest = shown["h-expiring"]
        .as_object_mut()
        .and_then(|pairs| pairs.remove("Earliest expiry"))
        .context("no earliest expiry shown")?;
    let expected = summary["earliest_expiry"]
        .as_str()
        .and_then(|t| Some(format!("{} {} UTC", t.get(..10)?, t.get(11..16)?)))
        .context("the summary has an earliest expiry")?;
    assert!(
        earliest.as_str().is_some_and(|e| e.starts_with(&expected)),
        "earliest expiry {earliest} against {expected}"
    );
    assert_eq!(
        shown,
        expected_figures(&summary, &capacity),
        "the page against {summary}"
    );
    if summary["failures"].as_array().is_some_and(Vec::is_empty) {
        let failures = browser
            .text("section[aria-labelledby='h-failures'] p")
            .await?;
        assert_eq!(failures, "No failed domains.");
    }

    browser.screenshot("overview").await?;

    // The chart: an image with a name and a description a screen reader reads out.
    let chart = "section[aria-labelledby='h-weeks'] svg";
    let (label, role) = browser.accessible(chart).await?;
    // ARIA 1.3 calls the role `image` (`img` is its synonym); Chromium says the new name.
    assert!(
        ["image", "img"].contains(&role.as_str()),
        "the chart's role: {role:?}"
    );
    assert!(
        label.contains("Certificates expiring in each of the coming weeks")
            && label.contains(&format!(
                "{expiring} certificates expire in the {} weeks shown",
                weeks.len()
            )),
        "the chart's accessible name: {label:?}"
    );
    let bars = browser
        .script(&format!(
            "return document.querySelectorAll(\"{chart} rect.bar\").length"
        ))
        .await?;
    assert_eq!(bars, weeks.len(), "one bar a week");
    // Its figures as a table, behind a disclosure that opens.
    browser
        .click("section[aria-labelledby='h-weeks'] details summary")
        .await?;
    let table = browser
        .script(
            "const d = document.querySelector(\"section[aria-labelledby='h-weeks'] details\");
             return [d.open, [...d.querySelectorAll('tbody tr')]
               .map(r => Number(r.lastElementChild.textContent))]",
        )
        .await?;
    assert_eq!(table, serde_json::json!([true, weeks]), "the chart's table");
    browser
        .script("document.querySelector('section[aria-labelledby=\"h-weeks\"]').scrollIntoView()")
        .await?;
    browser.screenshot("overview-chart-table").await?;
    browser.close().await
}

/// A web server answering every request with [`MARKUP`].
async fn markup_server(addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{MARKUP}",
                    MARKUP.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_problem_with_markup_is_shown_as_text() -> Result<()> {
    let web = free_addr();
    let server = markup_server(web).await?;
    let pebble = Pebble::builder(web.port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    check_served(&backend).await?;
    let name = "markup.acme-edge.test";
    backend.enable(name).await?;
    let failed = backend
        .wait_for_state(name, "failed", ISSUE_DEADLINE)
        .await?;
    let problem = failed["last_error"]["problem"].to_string();
    assert!(
        problem.contains("<script>"),
        "the CA's problem should quote the markup: {failed}"
    );

    let browser = Browser::start().await?;
    signed_in(&browser, &backend).await?;
    browser
        .goto(&format!("{}#/domains/{name}", console_url(&backend)))
        .await?;
    let shown = browser
        .wait_text("#problem", |t| t.contains("<script>"))
        .await?;
    assert!(shown.contains("<img src=x"), "{shown}");
    let page = browser
        .script(
            "return [document.querySelectorAll('#problem *, #last-error img, \
             #last-error script, #bold').length, typeof window.pwned]",
        )
        .await?;
    assert_eq!(page[0], 0, "markup became elements: {page}");
    assert_eq!(page[1], "undefined", "a script ran: {page}");
    browser.screenshot("ca-problem").await?;

    browser.goto(&console_url(&backend)).await?;
    browser
        .wait_text(&format!("tr[data-name='{name}']"), |t| t.contains("failed"))
        .await?;
    browser.close().await?;
    server.abort();
    Ok(())
}
