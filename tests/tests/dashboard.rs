//! The marketer's dashboard (`/dashboard/`, the worker's static assets) in real headless
//! Chromium against the real worker, over the written scenario `tests/scenarios/
//! closed_loop.json` replayed through the public API: every figure on screen is compared
//! with the file's hand-worked figures (and `tests/scenarios/dashboard.json` for the
//! headline and the default range), never with the code under test. Also: the facets
//! endpoint the dashboard reads, attacked like every endpoint.

use closeloop_e2e::browser::{blocking, Browser};
use closeloop_e2e::dashboard::Tab;
use closeloop_e2e::http;
use closeloop_e2e::scenario;
use closeloop_e2e::worker::{Site, Worker};
use serde_json::{json, Value};
use std::sync::OnceLock;

struct Loaded {
    worker: &'static Worker,
    site: Site,
    sc: Value,
    dash: Value,
}

fn loaded() -> &'static Loaded {
    static L: OnceLock<Result<Loaded, String>> = OnceLock::new();
    let l = L.get_or_init(|| {
        let worker = Worker::shared()?;
        let sc = scenario::read("closed_loop.json")?;
        let dash = scenario::read("dashboard.json")?;
        let site = scenario::replay(worker, &sc)?;
        Ok(Loaded {
            worker,
            site,
            sc,
            dash,
        })
    });
    match l {
        Ok(l) => l,
        Err(e) => panic!("replaying the scenario: {e}"),
    }
}

/// The scenario's report range as the dashboard's URL writes it (inclusive days).
const RANGE: &str = "from=2026-09-07&to=2026-10-18";

fn report<'a>(sc: &'a Value, name: &str) -> &'a Value {
    sc["expected"]["reports"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no report {name}"))
}

/// A number as the page writes it: `1,234.5`, `$4,200`, `185.7%`, `-100%`; `—` is none.
fn num(text: &str) -> Option<f64> {
    let t = text.trim();
    if t == "—" || t.is_empty() {
        return None;
    }
    let pct = t.ends_with('%');
    let clean: String = t
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let v: f64 = clean.parse().ok()?;
    Some(if pct { v / 100.0 } else { v })
}

/// Whether `shown` (page text) is `want` (a number, `null` for none) to the page's
/// precision: `scale` turns the expected value into the shown unit (cents → dollars).
fn same(shown: &str, want: &Value, scale: f64, tolerance: f64) -> bool {
    match (num(shown), want.as_f64()) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b * scale).abs() <= tolerance,
        _ => false,
    }
}

/// The cells of a table: per body row (`data-key`), per column (`data-col`), the text.
async fn table(tab: &Tab, id: &str) -> Value {
    tab.eval(&format!(
        "(() => {{ const out = {{}}; for (const tr of document.querySelectorAll('#{id} tbody tr[data-key], #{id} tfoot tr[data-key]')) {{
             const row = {{}}; for (const c of tr.children) row[c.dataset.col] = c.querySelector('button, span') && c.classList.contains('first') ? c.querySelector('button, span').textContent : c.textContent;
             out[tr.dataset.key] = row; }} return out; }})()"
    ))
    .await
    .expect("table")
}

/// Checks a sources table against a report of the scenario: rows and totals, every
/// figure the file gives (money in dollars to the cent, ratios to 0.1 %).
fn check_sources(what: &str, got: &Value, want: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let rows = want["rows"].as_object().expect("rows");
    for (key, w) in rows
        .iter()
        .chain(std::iter::once((&"total".to_string(), &want["totals"])))
    {
        let Some(g) = got.get(key.as_str()) else {
            errors.push(format!("{what}: no row {key} in {got}"));
            continue;
        };
        for (col, scale, tol) in [
            ("visitors", 1.0, 0.0),
            ("sessions", 1.0, 0.0),
            ("leads", 1.0, 0.006),
            ("customers", 1.0, 0.006),
            ("revenue", 0.01, 0.006),
            ("spend", 0.01, 0.006),
            ("cac", 0.01, 0.006),
            ("revenue_per_customer", 0.01, 0.006),
            ("roi", 1.0, 0.0006),
        ] {
            let shown = g[col].as_str().unwrap_or("?");
            if !same(shown, &w[col], scale, tol) {
                errors.push(format!(
                    "{what} [{key}] {col}: shown {shown}, expected {}",
                    w[col]
                ));
            }
        }
    }
    let shown_rows = got.as_object().map_or(0, |o| {
        o.keys()
            .filter(|k| *k != "total" && *k != "(unallocated spend)")
            .count()
    });
    if shown_rows != rows.len() {
        errors.push(format!(
            "{what}: {shown_rows} rows shown, {} expected: {got}",
            rows.len()
        ));
    }
    errors
}

async fn select(tab: &Tab, id: &str, value: &str) {
    tab.eval(&format!(
        "(() => {{ const s = document.getElementById('{id}'); s.value = {v}; s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value; }})()",
        v = json!(value)
    ))
    .await
    .expect("select");
}

async fn open(browser: &Browser, l: &Loaded, query: &str, width: u32) -> Tab {
    let url = l
        .worker
        .url(&format!("/dashboard/?site={}&{query}", l.site.id));
    let tab = Tab::open(browser, &url, width, 900).await.expect("tab");
    tab.sign_in(&l.site.id, &l.site.read_key)
        .await
        .expect("sign in");
    settle(&tab).await;
    tab
}

async fn settle(tab: &Tab) {
    if let Err(e) = tab.settled().await {
        let body = tab
            .eval("document.body.innerText")
            .await
            .unwrap_or_default();
        panic!("{e}\n{body}\nerrors: {:?}", tab.errors());
    }
}

/// Waits for the report whose parameters hold `needle` (JSON, e.g. `"model":"linear"`).
async fn settle_for(tab: &Tab, needle: &str) {
    if let Err(e) = tab.settled_for(needle).await {
        let body = tab
            .eval("document.body.innerText")
            .await
            .unwrap_or_default();
        panic!("{e}\n{body}\nerrors: {:?}", tab.errors());
    }
}

fn no_errors(tab: &Tab, what: &str) {
    let errors = tab.errors();
    assert!(errors.is_empty(), "{what}: console errors: {errors:#?}");
}

/// Scenario: the closed loop's site, opened with no range in the URL, in December 2026
/// or later: the last 30 days hold nothing, so the dashboard opens on the 30 days that
/// end with the latest data (2026-09-16 .. 2026-10-15) and says so; focus moves to the
/// reports' heading after sign-in; the headline figures and their change against the 30
/// days before are the hand-worked ones of `dashboard.json`; the key is in
/// sessionStorage and never in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headline_figures_open_on_a_range_with_data() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let url = l.worker.url("/dashboard/");
    let tab = Tab::open(&browser, &url, 1366, 900).await.expect("tab");
    tab.sign_in(&l.site.id, &l.site.read_key)
        .await
        .expect("sign in");
    settle(&tab).await;
    tab.until("document.querySelectorAll('#kpis .kpi').length === 7")
        .await
        .expect("kpis");
    let focus = tab
        .eval("document.activeElement && document.activeElement.id")
        .await
        .expect("focus");
    assert_eq!(focus, json!("view-heading"), "focus moves to the reports");
    let range = tab
        .eval("[document.getElementById('from').value, document.getElementById('to').value]")
        .await
        .expect("range");
    let want = &l.dash["default_range"];
    assert_eq!(
        range,
        json!([want["from"], want["to"]]),
        "the default range holds data"
    );
    let notice = tab
        .eval("document.getElementById('range-notice')?.textContent || ''")
        .await
        .expect("notice");
    assert!(
        notice
            .as_str()
            .unwrap_or("")
            .contains("Nothing was recorded in the last 30 days"),
        "{notice}"
    );
    let kpis = tab
        .eval("Object.fromEntries([...document.querySelectorAll('#kpis .kpi')].map(k => [k.dataset.kpi, [k.querySelector('[data-value]').textContent, k.querySelector('[data-change]').textContent]]))")
        .await
        .expect("kpis");
    for (k, shown) in l.dash["headline"]["shown"].as_object().expect("shown") {
        assert_eq!(&kpis[k], shown, "{k}: {kpis}");
    }
    // the figures on screen are the API's for that range
    let api = blocking(|| {
        http::get(
            &l.worker.url(&format!(
                "/v1/sites/{}/reports/sources?from=2026-09-16&to=2026-10-16",
                l.site.id
            )),
            Some(&l.site.read_key),
        )
    })
    .expect("api");
    let totals = &api.json["totals"];
    for (k, v) in l.dash["headline"]["current"].as_object().expect("current") {
        let got = &totals[k];
        assert!(
            (got.as_f64().unwrap_or(f64::NAN) - v.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6
                || (got.is_null() && v.is_null()),
            "API {k}: {got} vs hand-worked {v}"
        );
    }
    let href = tab.eval("location.href").await.expect("href");
    assert!(
        !href.as_str().unwrap_or("").contains(&l.site.read_key),
        "{href}"
    );
    assert!(
        href.as_str()
            .unwrap_or("")
            .contains(&format!("site={}", l.site.id)),
        "{href}"
    );
    let stored = tab
        .eval("sessionStorage.getItem('closeloop.dashboard')")
        .await
        .expect("stored");
    assert!(stored.as_str().unwrap_or("").contains(&l.site.read_key));
    no_errors(&tab, "overview");
    browser.close().await;
}

/// Scenario: the sources view over the scenario's six weeks. First touch by channel, then
/// linear, then a 14-day lookback, then the opportunity stage as the conversion, then the
/// country=DE segment (spend split by sessions: the Referral record covers no session and
/// is left out, said on screen), then grouped by campaign (the Paid Search record has no
/// campaign: one "Unallocated spend" line of $420, totals $620); each table equals the
/// file's report. Choosing the Email row opens that segment grouped by source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_follow_model_lookback_conversion_segment_and_grouping() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(
        &browser,
        l,
        &format!("view=sources&{RANGE}&model=first_touch"),
        1366,
    )
    .await;
    let mut errors = Vec::new();
    errors.extend(check_sources(
        "first_touch",
        &table(&tab, "sources").await,
        report(&l.sc, "channel/first_touch"),
    ));

    select(&tab, "model", "linear").await;
    settle_for(&tab, r#""model":"linear""#).await;
    errors.extend(check_sources(
        "linear",
        &table(&tab, "sources").await,
        report(&l.sc, "channel/linear"),
    ));

    select(&tab, "model", "first_touch").await;
    tab.eval("(() => { const i = document.getElementById('lookback'); i.value = '14'; i.dispatchEvent(new Event('change', {bubbles: true})); })()").await.expect("lookback");
    settle_for(&tab, r#""lookback_days":"14""#).await;
    errors.extend(check_sources(
        "lookback 14",
        &table(&tab, "sources").await,
        report(&l.sc, "channel/first_touch/lookback=14"),
    ));
    tab.eval("(() => { const i = document.getElementById('lookback'); i.value = '90'; i.dispatchEvent(new Event('change', {bubbles: true})); })()").await.expect("lookback");

    select(&tab, "conversion", "opportunity").await;
    settle_for(&tab, r#""conversion":"opportunity""#).await;
    let got = table(&tab, "sources").await;
    let want = report(&l.sc, "channel/first_touch/conversion=opportunity");
    for (key, w) in want["rows"].as_object().expect("rows") {
        let shown = got[key]["conversions"].as_str().unwrap_or("?");
        if !same(shown, &w["conversions"], 1.0, 0.006) {
            errors.push(format!(
                "opportunities [{key}]: shown {shown}, expected {}",
                w["conversions"]
            ));
        }
    }
    select(&tab, "conversion", "customer").await;

    // a segment, added as a person would
    select(&tab, "seg_dim", "country").await;
    tab.eval("(() => { const i = document.getElementById('seg_value'); i.value = 'DE'; i.dispatchEvent(new Event('input', {bubbles: true})); })()").await.expect("value");
    tab.page
        .find_element(".seg-add button")
        .await
        .expect("add")
        .click()
        .await
        .expect("click add");
    tab.until("location.search.includes('country=DE')")
        .await
        .expect("segment in the URL");
    settle_for(&tab, r#""country":"DE""#).await;
    errors.extend(check_sources(
        "country=DE",
        &table(&tab, "sources").await,
        report(&l.sc, "channel/first_touch/country=DE"),
    ));
    let note = tab
        .eval("document.getElementById('spend-note')?.textContent || ''")
        .await
        .expect("note");
    assert!(
        note.as_str()
            .unwrap_or("")
            .contains("$200 of spend left out"),
        "{note}"
    );
    tab.page
        .find_element(".chip button")
        .await
        .expect("chip")
        .click()
        .await
        .expect("remove");
    tab.until("!location.search.includes('country=')")
        .await
        .expect("segment removed");

    select(&tab, "group_by", "campaign").await;
    settle_for(&tab, r#""group_by":"campaign""#).await;
    let got = table(&tab, "sources").await;
    errors.extend(check_sources(
        "campaign",
        &got,
        report(&l.sc, "campaign/first_touch"),
    ));
    assert_eq!(got["(unallocated spend)"]["spend"], json!("$420"), "{got}");
    assert_eq!(
        got["(unallocated spend)"]["key"],
        json!("Unallocated spend"),
        "{got}"
    );
    assert_eq!(got["total"]["spend"], json!("$620"), "{got}");
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // drill down: the Email row of the channel grouping
    select(&tab, "group_by", "channel").await;
    settle_for(&tab, r#""group_by":"channel""#).await;
    tab.page
        .find_element("#sources tbody tr[data-key=\"Email\"] button")
        .await
        .expect("row")
        .click()
        .await
        .expect("click row");
    tab.until(
        "location.search.includes('channel=Email') && location.search.includes('group_by=source')",
    )
    .await
    .expect("drill-down");
    settle_for(&tab, r#""channel":"Email""#).await;
    let got = table(&tab, "sources").await;
    assert_eq!(
        got["newsletter"]["sessions"],
        json!("3"),
        "Email sessions s01 s08 s14, all from the newsletter: {got}"
    );
    no_errors(&tab, "sources");
    browser.close().await;
}

/// Scenario: first touch (A) against last touch (B) by channel, customers: each row's
/// A and B are the file's two reports' customers and the difference B − A; the totals are
/// equal (4). The funnel under first touch: per channel visitors → leads → opportunities
/// → customers and the rates between them, from the file's first-touch reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_comparison_and_funnel_rates() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(
        &browser,
        l,
        &format!("view=compare&{RANGE}&model=first_touch&model_b=last_touch"),
        1366,
    )
    .await;
    let got = table(&tab, "compare").await;
    let a = report(&l.sc, "channel/first_touch");
    let b = report(&l.sc, "channel/last_touch");
    let mut errors = Vec::new();
    for (key, wa) in a["rows"].as_object().expect("rows") {
        let x = wa["customers"].as_f64().unwrap_or(0.0);
        let y = b["rows"][key]["customers"].as_f64().unwrap_or(0.0);
        for (col, want) in [("a", x), ("b", y), ("diff", y - x)] {
            let shown = got[key][col].as_str().unwrap_or("?");
            if !same(shown, &json!(want), 1.0, 0.006) {
                errors.push(format!(
                    "compare [{key}] {col}: shown {shown}, expected {want}"
                ));
            }
        }
    }
    assert_eq!(got["total"]["a"], json!("4"));
    assert_eq!(got["total"]["b"], json!("4"));
    assert_eq!(
        tab.eval("document.querySelectorAll('#compare-chart canvas').length")
            .await
            .expect("chart"),
        json!(1)
    );
    no_errors(&tab, "compare");

    // the funnel
    tab.page
        .find_element("a[data-view=funnel]")
        .await
        .expect("tab")
        .click()
        .await
        .expect("funnel");
    settle(&tab).await;
    let got = table(&tab, "funnel").await;
    let opp = report(&l.sc, "channel/first_touch/conversion=opportunity");
    for (key, w) in a["rows"].as_object().expect("rows") {
        let visitors = w["visitors"].as_f64().unwrap_or(0.0);
        let leads = w["leads"].as_f64().unwrap_or(0.0);
        let opps = opp["rows"][key]["conversions"].as_f64().unwrap_or(0.0);
        let customers = w["customers"].as_f64().unwrap_or(0.0);
        let rate = |a: f64, b: f64| if b > 0.0 { json!(a / b) } else { Value::Null };
        for (col, want, tol) in [
            ("visitors", json!(visitors), 0.0),
            ("leads", json!(leads), 0.006),
            ("lead_rate", rate(leads, visitors), 0.0006),
            ("stage_opportunity", json!(opps), 0.006),
            ("stage_opportunity_rate", rate(opps, leads), 0.0006),
            ("customers", json!(customers), 0.006),
            ("customer_rate", rate(customers, opps), 0.0006),
        ] {
            let shown = got[key][col].as_str().unwrap_or("?");
            if !same(shown, &want, 1.0, tol) {
                errors.push(format!(
                    "funnel [{key}] {col}: shown {shown}, expected {want}"
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    no_errors(&tab, "funnel");
    browser.close().await;
}

/// Scenario: the pages report of the six weeks: every page's views, entrances, exits,
/// assists and direct conversions as the file works them out; sorted by exits (a click on
/// the heading) /demo (6) comes first, and again ascending last; the sort is in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_sortable_with_exits_and_the_flag_rule() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(&browser, l, &format!("view=pages&{RANGE}"), 1366).await;
    let got = table(&tab, "pages").await;
    let mut errors = Vec::new();
    for (path, w) in l.sc["expected"]["pages"]["rows"].as_object().expect("rows") {
        for (col, scale) in [
            ("views", 1.0),
            ("entrances", 1.0),
            ("exits", 1.0),
            ("assisted_leads", 1.0),
            ("assisted_customers", 1.0),
            ("assisted_revenue", 0.01),
            ("direct_conversions", 1.0),
        ] {
            let shown = got[path][col].as_str().unwrap_or("?");
            if !same(shown, &w[col], scale, 0.006) {
                errors.push(format!(
                    "pages [{path}] {col}: shown {shown}, expected {}",
                    w[col]
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let order = "[...document.querySelectorAll('#pages tbody tr')].map(r => r.dataset.key)";
    assert_eq!(
        tab.eval(order).await.expect("order"),
        l.sc["expected"]["pages"]["order"],
        "by views"
    );
    tab.page
        .find_element("button[data-sort=exits]")
        .await
        .expect("exits")
        .click()
        .await
        .expect("sort");
    tab.until("location.search.includes('sort=exits')")
        .await
        .expect("sort in the URL");
    // exits: /demo 6, /pricing 5, then / and /blog/attribution 3 (stable: views order)
    let o = tab.eval(order).await.expect("order");
    assert_eq!(o[0], json!("/demo"), "{o}");
    assert_eq!(o[1], json!("/pricing"), "{o}");
    let sort = tab
        .eval("document.querySelector('th[aria-sort=descending]')?.textContent")
        .await
        .expect("aria-sort");
    assert!(sort.as_str().unwrap_or("").starts_with("Exits"), "{sort}");
    tab.page
        .find_element("button[data-sort=exits]")
        .await
        .expect("exits")
        .click()
        .await
        .expect("sort asc");
    tab.until("location.search.includes('order=asc')")
        .await
        .expect("ascending");
    let o = tab.eval(order).await.expect("order");
    assert_eq!(o[3], json!("/demo"), "{o}");
    let rule = tab
        .eval("document.getElementById('flag-rule').textContent")
        .await
        .expect("rule");
    assert!(
        rule.as_str()
            .unwrap_or("")
            .contains("under half the site's"),
        "{rule}"
    );
    no_errors(&tab, "pages");
    browser.close().await;
}

/// Scenario: the weekly trend under first touch: six weeks labelled "Week of Sep 7" …
/// "Week of Oct 12" (never an ISO week code), each week's figures as the file says; the
/// chart's values are read by keyboard (arrow keys) in its live readout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_trend_has_readable_labels_and_keyboard_values() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(
        &browser,
        l,
        &format!("view=trend&{RANGE}&model=first_touch&granularity=week"),
        1366,
    )
    .await;
    let rows = tab
        .eval("[...document.querySelectorAll('#trend tbody tr')].map(tr => Object.fromEntries([...tr.children].map(c => [c.dataset.col, c.textContent])))")
        .await
        .expect("rows");
    let buckets = l.sc["expected"]["timeseries"]["buckets"]
        .as_object()
        .expect("buckets");
    let labels = [
        "Week of Sep 7",
        "Week of Sep 14",
        "Week of Sep 21",
        "Week of Sep 28",
        "Week of Oct 5",
        "Week of Oct 12",
    ];
    let mut errors = Vec::new();
    for (i, ((_, w), label)) in buckets.iter().zip(labels).enumerate() {
        let r = &rows[i];
        if r["bucket"] != json!(label) {
            errors.push(format!("week {i}: label {}", r["bucket"]));
        }
        for (col, scale) in [
            ("visitors", 1.0),
            ("sessions", 1.0),
            ("leads", 1.0),
            ("customers", 1.0),
            ("revenue", 0.01),
            ("spend", 0.01),
        ] {
            let shown = r[col].as_str().unwrap_or("?");
            if !same(shown, &w[col], scale, 0.006) {
                errors.push(format!("{label} {col}: shown {shown}, expected {}", w[col]));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let text = tab.eval("document.body.innerText").await.expect("text");
    assert!(
        !text.as_str().unwrap_or("").contains("-W3"),
        "no ISO week code on screen"
    );
    tab.page
        .find_element("#trend-chart .chart-box")
        .await
        .expect("chart")
        .focus()
        .await
        .expect("focus");
    tab.page
        .find_element("#trend-chart .chart-box")
        .await
        .expect("chart")
        .press_key("ArrowRight")
        .await
        .expect("key");
    tab.until("document.querySelector('#trend-chart [data-readout]').textContent.length > 0")
        .await
        .expect("readout");
    let readout = tab
        .eval("document.querySelector('#trend-chart [data-readout]').textContent")
        .await
        .expect("readout");
    assert_eq!(readout, json!("Week of Sep 7: Sessions 4"));
    no_errors(&tab, "trend");
    browser.close().await;
}

/// Scenario: the five leads of the six weeks; searching "bob" finds one; the stage
/// "customer" finds the four won (ann, bob, cara, dan). Ann's journey: two devices, three
/// sessions with their touches and pages, the form on /demo, the opportunity and the won
/// deal ($5,000), and each model's share of each touch as the file works them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leads_list_and_a_lead_journey() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(&browser, l, &format!("view=leads&{RANGE}"), 1366).await;
    let emails = "[...document.querySelectorAll('#leads tbody tr[data-key]')].map(r => r.querySelector('th').textContent).sort()";
    tab.until("document.querySelectorAll('#leads tbody tr[data-key]').length === 5")
        .await
        .expect("five leads");
    tab.eval("(() => { const i = document.getElementById('lead_q'); i.value = 'bob'; i.dispatchEvent(new Event('input', {bubbles: true})); })()").await.expect("q");
    tab.page
        .find_element("form[role=search] button[type=submit]")
        .await
        .expect("search")
        .click()
        .await
        .expect("click");
    tab.until("document.querySelectorAll('#leads tbody tr[data-key]').length === 1")
        .await
        .expect("one lead");
    assert_eq!(
        tab.eval(emails).await.expect("emails"),
        json!(["bob@example.com"])
    );
    tab.eval("(() => { const i = document.getElementById('lead_q'); i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true})); })()").await.expect("q");
    tab.page
        .find_element("form[role=search] button[type=submit]")
        .await
        .expect("search")
        .click()
        .await
        .expect("click");
    select(&tab, "lead_stage", "customer").await;
    tab.until("document.querySelectorAll('#leads tbody tr[data-key]').length === 4")
        .await
        .expect("four won");
    assert_eq!(
        tab.eval(emails).await.expect("emails"),
        json!([
            "ann@example.com",
            "bob@example.com",
            "cara@example.com",
            "dan@example.com"
        ])
    );
    // ann became a lead first: her row is the last (newest first)
    tab.eval("[...document.querySelectorAll('#leads tbody th button')].find(b => b.textContent === 'ann@example.com').click()")
        .await
        .expect("open ann");
    tab.until("location.search.includes('view=lead')")
        .await
        .expect("journey");
    settle(&tab).await;
    if let Err(e) = tab
        .until("document.querySelectorAll('#timeline .tl-session').length === 3")
        .await
    {
        let main = tab.eval("document.querySelector('main').innerText").await;
        panic!("{e}: {main:?}");
    }
    let j = &l.sc["expected"]["journeys"]["ann@example.com"];
    assert_eq!(
        tab.eval("document.querySelectorAll('#devices li').length")
            .await
            .expect("devices"),
        json!(2)
    );
    let pages = tab
        .eval("[...document.querySelectorAll('#timeline .tl-pages .path')].map(p => p.textContent)")
        .await
        .expect("pages");
    let want_pages: Vec<&Value> = j["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| &p["path"])
        .collect();
    assert_eq!(pages, json!(want_pages));
    let touches = tab
        .eval("[...document.querySelectorAll('#timeline [data-touch]')].map(t => t.textContent)")
        .await
        .expect("touches");
    assert_eq!(
        touches,
        json!([
            "Email · newsletter / email · campaign september",
            "Organic Social · linkedin.com / referral",
            "Paid Search · google / cpc"
        ])
    );
    let conversions = tab.eval("[...document.querySelectorAll('#timeline .tl-conversion')].map(c => c.querySelector('strong').textContent)").await.expect("conversions");
    assert_eq!(
        conversions,
        json!([
            "Became a lead — form on /demo",
            "Deal reached opportunity",
            "Won: $5,000"
        ])
    );
    // the credit tables: one per conversion, touches numbered in time order (s01 s02 s03)
    let credit = tab
        .eval("[...document.querySelectorAll('[data-credit]')].map(t => ({kind: t.dataset.credit, rows: [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.model, td.textContent])))}))")
        .await
        .expect("credit");
    let mut errors = Vec::new();
    for (i, conv) in j["conversions"]
        .as_array()
        .expect("conversions")
        .iter()
        .enumerate()
    {
        let shown = &credit[i];
        assert_eq!(shown["kind"], conv["kind"]);
        for (model, shares) in conv["credits"].as_object().expect("credits") {
            for (s, name) in ["s01", "s02", "s03"].iter().enumerate() {
                let want = shares.get(*name).and_then(Value::as_f64).unwrap_or(0.0);
                let Some(cell) = shown["rows"][s][model.as_str()].as_str() else {
                    if want > 0.0 {
                        errors.push(format!("{} {model} {name}: no cell", conv["id"]));
                    }
                    continue;
                };
                if !same(cell, &json!(want), 1.0, 0.0006) {
                    errors.push(format!(
                        "{} {model} {name}: shown {cell}, expected {want}",
                        conv["id"]
                    ));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    no_errors(&tab, "leads and journey");
    browser.close().await;
}

/// The state round-trips through the URL: a view set up by hand (compare, linear against
/// time decay with a 3-day half-life, grouped by source, the Email segment, bots counted,
/// a custom range) reloads in a new tab to the same controls and the same table; and the
/// CSV export holds exactly the table's rows and figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_round_trips_the_state_and_the_csv_matches_the_table() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = open(&browser, l, &format!("view=compare&{RANGE}"), 1366).await;
    select(&tab, "model", "linear").await;
    select(&tab, "model_b", "time_decay").await;
    settle(&tab).await;
    tab.eval("(() => { const i = document.getElementById('half_life'); i.value = '3'; i.dispatchEvent(new Event('change', {bubbles: true})); })()").await.expect("half life");
    select(&tab, "group_by", "source").await;
    tab.eval("document.getElementById('bots').click()")
        .await
        .expect("bots");
    select(&tab, "seg_dim", "channel").await;
    tab.eval("(() => { const i = document.getElementById('seg_value'); i.value = 'Email'; i.dispatchEvent(new Event('input', {bubbles: true})); })()").await.expect("value");
    tab.page
        .find_element(".seg-add button")
        .await
        .expect("add")
        .click()
        .await
        .expect("click add");
    tab.until("location.search.includes('channel=Email')")
        .await
        .expect("segment");
    settle(&tab).await;
    let href = tab.eval("location.href").await.expect("href");
    let href = href.as_str().expect("href").to_string();
    for part in [
        "view=compare",
        "model=linear",
        "model_b=time_decay",
        "half_life_days=3",
        "group_by=source",
        "include_bots=true",
        "channel=Email",
        "from=2026-09-07",
        "to=2026-10-18",
    ] {
        assert!(href.contains(part), "{part} in {href}");
    }
    assert!(!href.contains(&l.site.read_key));
    let controls = "['model','model_b','half_life','group_by','from','to'].map(id => document.getElementById(id).value).concat([document.getElementById('bots').checked, document.querySelector('.chip').textContent])";
    let before = tab.eval(controls).await.expect("controls");
    let shown = table(&tab, "compare").await;

    // the CSV of the table in view
    tab.eval("window.__csv = null; const orig = URL.createObjectURL; URL.createObjectURL = (b) => { window.__csv = b; return orig(b); };").await.expect("hook");
    tab.page
        .find_element("#compare-csv")
        .await
        .expect("csv")
        .click()
        .await
        .expect("export");
    tab.until("!!window.__csv").await.expect("csv made");
    let csv = tab.eval("window.__csv.text()").await.expect("csv text");
    let csv = csv
        .as_str()
        .expect("csv")
        .trim_start_matches('\u{feff}')
        .to_string();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with(
            "Source,Customers: Linear,Customers: Time decay,Difference (B − A),Difference %"
        ),
        "{csv}"
    );
    let body_rows = shown.as_object().expect("rows").len();
    assert_eq!(lines.len(), 1 + body_rows, "{csv}");
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let key = if cells[0] == "Total" {
            "total"
        } else {
            cells[0]
        };
        let row = &shown[key];
        for (i, col) in ["a", "b", "diff"].iter().enumerate() {
            let v: f64 = cells[i + 1].parse().unwrap_or(f64::NAN);
            assert!(
                same(row[*col].as_str().unwrap_or("?"), &json!(v), 1.0, 0.006),
                "{key} {col}: csv {v} vs table {}",
                row[*col]
            );
        }
    }
    no_errors(&tab, "round trip (first tab)");

    // a new tab has its own session storage: the key is asked again, the state is kept
    let again = Tab::open(&browser, &href, 1366, 900).await.expect("reload");
    again
        .until("!!document.getElementById('site')")
        .await
        .expect("sign-in form");
    assert_eq!(
        again
            .eval("document.getElementById('site').value")
            .await
            .expect("site"),
        json!(l.site.id),
        "the site id comes from the URL"
    );
    again
        .sign_in(&l.site.id, &l.site.read_key)
        .await
        .expect("sign in");
    settle(&again).await;
    assert_eq!(
        again.eval(controls).await.expect("controls"),
        before,
        "the same controls after a reload"
    );
    assert_eq!(
        table(&again, "compare").await,
        shown,
        "the same table after a reload"
    );
    no_errors(&again, "round trip (second tab)");
    browser.close().await;
}

/// Scenario: a visitor lands with `utm_campaign=<img src=x onerror=...>` and
/// `utm_source=javascript:window.__xss=2` on a page whose path holds markup, another with
/// a campaign `=HYPERLINK("http://evil.example")`. The dashboard shows them as text: no
/// element is made of them, nothing runs, no `javascript:` link exists; the CSV keeps the
/// formula as text (a leading apostrophe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_markup_and_javascript_urls_show_inert() {
    let worker = Worker::shared().expect("worker");
    let origin = "https://inert.example";
    let site = worker.create_site(&[origin]).expect("site");
    let now = closeloop_e2e::now_ms();
    let evil = "%3Cimg%20src%3Dx%20onerror%3D%22window.__xss%3D1%22%3E";
    let batches = json!([
        {"visitor_id": "inert-visitor-0001", "context": {"country": "US", "user_agent": closeloop_e2e::browser::USER_AGENT}, "events": [
            {"id": "inert-ev-0001", "type": "pageview", "created_at": now - 3_600_000,
             "url": format!("{origin}/%3Cb%3Ebold%3C/b%3E?utm_source=javascript:window.__xss%3D2&utm_medium=email&utm_campaign={evil}"), "referrer": ""}]},
        {"visitor_id": "inert-visitor-0002", "context": {"country": "US", "user_agent": closeloop_e2e::browser::USER_AGENT}, "events": [
            {"id": "inert-ev-0002", "type": "pageview", "created_at": now - 3_000_000,
             "url": format!("{origin}/?utm_source=news&utm_medium=email&utm_campaign=%3DHYPERLINK(%22http://evil.example%22)"), "referrer": "javascript:alert(1)"}]}
    ]);
    let a = blocking(|| {
        scenario::post(
            worker,
            &site,
            "events:import",
            "application/json",
            &batches.to_string(),
        )
    })
    .expect("import");
    assert_eq!(a.json["accepted"], json!(2), "{}", a.text);
    let browser = Browser::launch().await.expect("chromium");
    let url = worker.url(&format!(
        "/dashboard/?site={}&view=sources&group_by=campaign",
        site.id
    ));
    let tab = Tab::open(&browser, &url, 1366, 900).await.expect("tab");
    tab.sign_in(&site.id, &site.read_key)
        .await
        .expect("sign in");
    settle(&tab).await;
    tab.until("document.querySelectorAll('#sources tbody tr[data-key]').length === 2")
        .await
        .expect("rows");
    let keys = tab
        .eval("[...document.querySelectorAll('#sources tbody tr')].map(r => r.dataset.key).sort()")
        .await
        .expect("keys");
    assert_eq!(
        keys,
        json!([
            "<img src=x onerror=\"window.__xss=1\">",
            "=HYPERLINK(\"http://evil.example\")"
        ])
    );
    for view in [
        "sources&group_by=source",
        "pages",
        "overview",
        "leads",
        "trend",
    ] {
        tab.eval(&format!("history.pushState(null, '', '?site={}&view={view}'); dispatchEvent(new PopStateEvent('popstate'))", site.id)).await.expect("nav");
        settle(&tab).await;
        let inert = tab
            .eval("({img: document.querySelectorAll('main img, main b').length, xss: window.__xss === undefined, js: document.querySelectorAll('a[href^=\"javascript\" i]').length})")
            .await
            .expect("inert");
        assert_eq!(inert, json!({"img": 0, "xss": true, "js": 0}), "{view}");
    }
    tab.eval("history.pushState(null, '', '?site=' + new URLSearchParams(location.search).get('site') + '&view=sources&group_by=source'); dispatchEvent(new PopStateEvent('popstate'))").await.expect("nav");
    settle(&tab).await;
    let text = tab
        .eval("document.getElementById('sources').textContent")
        .await
        .expect("text");
    assert!(
        text.as_str()
            .unwrap_or("")
            .contains("javascript:window.__xss=2"),
        "shown as text: {text}"
    );
    tab.eval("history.pushState(null, '', '?site=' + new URLSearchParams(location.search).get('site') + '&view=sources&group_by=campaign'); dispatchEvent(new PopStateEvent('popstate'))").await.expect("nav");
    settle(&tab).await;
    tab.eval("window.__csv = null; const orig = URL.createObjectURL; URL.createObjectURL = (b) => { window.__csv = b; return orig(b); };").await.expect("hook");
    tab.page
        .find_element("#sources-csv")
        .await
        .expect("csv")
        .click()
        .await
        .expect("export");
    tab.until("!!window.__csv").await.expect("csv made");
    let csv = tab.eval("window.__csv.text()").await.expect("csv text");
    let csv = csv.as_str().unwrap_or("");
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "neutralised: {csv}"
    );
    assert!(
        !csv.contains("\n=HYPERLINK") && !csv.contains(",=HYPERLINK"),
        "{csv}"
    );
    assert_eq!(
        tab.eval("window.__xss === undefined").await.expect("xss"),
        json!(true)
    );
    no_errors(&tab, "inert");
    browser.close().await;
}

/// Every view at phone width (390 px) and laptop width (1366 px) loads with no console
/// error, CSP violation or uncaught exception; at 390 px the sources table pins its first
/// column, says it scrolls, and every figure stays reachable (the table scrolls sideways).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_loads_without_errors_at_phone_and_laptop_width() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    for (width, _) in closeloop_e2e::dashboard::WIDTHS {
        let tab = open(&browser, l, &format!("view=overview&{RANGE}"), width).await;
        for view in [
            "overview", "sources", "funnel", "compare", "pages", "trend", "leads",
        ] {
            tab.page
                .find_element(&format!("a[data-view={view}]"))
                .await
                .expect("tab")
                .click()
                .await
                .expect("switch");
            tab.until(&format!(
                "location.search.includes('view={view}') || '{view}' === 'overview'"
            ))
            .await
            .expect("view");
            settle(&tab).await;
            let focus = tab.eval("document.activeElement?.id").await.expect("focus");
            assert_eq!(focus, json!("view-heading"), "{view} at {width}");
            no_errors(&tab, &format!("{view} at {width}px"));
        }
        if width < 500 {
            tab.page
                .find_element("a[data-view=sources]")
                .await
                .expect("tab")
                .click()
                .await
                .expect("sources");
            settle(&tab).await;
            let phone = tab
                .eval("(() => { const w = document.querySelector('#sources-section .table-wrap'); const th = document.querySelector('#sources tbody th'); return {scrolls: w.scrollWidth > w.clientWidth, overflowX: getComputedStyle(w).overflowX, sticky: getComputedStyle(th).position, hint: !!document.querySelector('#sources-section .scroll-hint'), fits: document.documentElement.scrollWidth <= 390}; })()")
                .await
                .expect("phone");
            assert_eq!(
                phone,
                json!({"scrolls": true, "overflowX": "auto", "sticky": "sticky", "hint": true, "fits": true})
            );
        }
    }
    // the worker serves the page with its strict CSP
    let page = blocking(|| http::get(&l.worker.url("/dashboard/"), None)).expect("GET /dashboard/");
    let csp = page
        .header("content-security-policy")
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "CSP: {csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    browser.close().await;
}

/// A made-up key: a readable message that names the read key and the 403, no figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_explained() {
    let l = blocking(loaded);
    let browser = Browser::launch().await.expect("chromium");
    let tab = Tab::open(&browser, &l.worker.url("/dashboard/"), 1366, 900)
        .await
        .expect("tab");
    tab.sign_in(&l.site.id, "clr_not-the-right-key-0000")
        .await
        .expect("sign in");
    tab.until("!!document.querySelector('.status.error')")
        .await
        .expect("error");
    let text = tab
        .eval("document.querySelector('.status.error').textContent")
        .await
        .expect("text");
    let text = text.as_str().unwrap_or("");
    assert!(
        text.contains("check the read key") && text.contains("403"),
        "{text}"
    );
    assert_eq!(
        tab.eval("document.querySelectorAll('table').length")
            .await
            .expect("tables"),
        json!(0)
    );
    browser.close().await;
}

// ---- the API the dashboard reads: reports/facets and the leads list's stage ------------

/// Scenario: the facets of the closed loop's site: sessions from d0 10:00 to d31 11:00
/// (the crawler's left out), conversions from ann's lead (d7 10:05) to dan's won deal
/// (d38 11:00); kinds: 5 leads, 4 customers, 2 opportunities; over the six weeks the
/// channels by sessions: Direct 4, Organic Social 4, Email 3, Paid Search 3, Organic
/// Search 2, Referral 1 (ties by name); countries DE 7, US 7, GB 3 (s01–s17).
#[test]
fn facets_list_the_data_span_the_kinds_and_the_segment_values() {
    let l = loaded();
    let url = l.worker.url(&format!(
        "/v1/sites/{}/reports/facets?from=2026-09-07&to=2026-10-19",
        l.site.id
    ));
    let a = http::get(&url, Some(&l.site.read_key)).expect("facets");
    assert_eq!(a.status, 200, "{}", a.text);
    let d = &a.json["data"];
    assert_eq!(d["first_session"], json!("2026-09-07T10:00:00.000Z"));
    assert_eq!(d["last_session"], json!("2026-10-08T11:00:00.000Z"));
    assert_eq!(d["first_conversion"], json!("2026-09-14T10:05:00.000Z"));
    assert_eq!(d["last_conversion"], json!("2026-10-15T11:00:00.000Z"));
    assert_eq!(d["sessions"], json!(17));
    let kinds: Vec<(String, i64)> = a.json["conversion_kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap_or("").to_string(),
                k["conversions"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("lead".to_string(), 5),
            ("customer".to_string(), 4),
            ("opportunity".to_string(), 2)
        ]
    );
    let channels: Vec<(String, i64)> = a.json["values"]["channel"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or("").to_string(),
                v["sessions"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("Direct", 4),
        ("Organic Social", 4),
        ("Email", 3),
        ("Paid Search", 3),
        ("Organic Search", 2),
        ("Referral", 1),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(channels, want);
    let countries = &a.json["values"]["country"];
    // (ties by value)
    assert_eq!(
        countries[0],
        json!({"value": "DE", "sessions": 7}),
        "{countries}"
    );
    assert_eq!(
        countries[1],
        json!({"value": "US", "sessions": 7}),
        "{countries}"
    );
    assert_eq!(
        countries[2],
        json!({"value": "GB", "sessions": 3}),
        "{countries}"
    );
    assert_eq!(
        a.json["values"]["campaign"][0],
        json!({"value": "(not set)", "sessions": 13})
    );
    // with the crawler
    let a = http::get(&format!("{url}&include_bots=true"), Some(&l.site.read_key)).expect("facets");
    assert_eq!(a.json["data"]["sessions"], json!(18));
    assert_eq!(
        a.json["data"]["first_session"],
        json!("2026-09-07T10:00:00.000Z")
    );
}

/// The facets endpoint attacked: no key 401, another site's read key 403, this site's
/// write key 403 (wrong scope), malformed parameters 400 with the JSON error, a POST 405.
#[test]
fn facets_refuse_what_they_must() {
    let l = loaded();
    let other = l
        .worker
        .create_site(&["https://other.example"])
        .expect("other site");
    let url = l
        .worker
        .url(&format!("/v1/sites/{}/reports/facets", l.site.id));
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        ("no key", url.clone(), None, 401, "missing_key"),
        (
            "another site's key",
            url.clone(),
            Some(other.read_key.as_str()),
            403,
            "forbidden",
        ),
        (
            "the write key",
            url.clone(),
            Some(l.site.write_key.as_str()),
            403,
            "insufficient_scope",
        ),
        (
            "a bad from",
            format!("{url}?from=yesterday"),
            Some(l.site.read_key.as_str()),
            400,
            "invalid_parameter",
        ),
        (
            "from after to",
            format!("{url}?from=2026-10-01&to=2026-09-01"),
            Some(l.site.read_key.as_str()),
            400,
            "invalid_parameter",
        ),
        (
            "a bad include_bots",
            format!("{url}?include_bots=maybe"),
            Some(l.site.read_key.as_str()),
            400,
            "invalid_parameter",
        ),
    ];
    for (what, u, key, status, code) in cases {
        let a = http::get(&u, key).expect("get");
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert_eq!(a.json["error"]["code"], json!(code), "{what}: {}", a.text);
        assert!(a.json["error"]["message"].is_string(), "{what}");
    }
    let auth = format!("Bearer {}", l.site.read_key);
    let a = http::request(
        "POST",
        &url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some("{}"),
    )
    .expect("post");
    assert_eq!(a.status, 405, "{}", a.text);
    // another site's id with this site's key
    let a = http::get(
        &l.worker
            .url(&format!("/v1/sites/{}/reports/facets", other.id)),
        Some(&l.site.read_key),
    )
    .expect("get");
    assert_eq!(a.status, 403, "{}", a.text);
}

/// The leads list's `stage` filter and `stages`: "opportunity" finds ann and dan, with
/// their stages in the order reached; a stage longer than 64 bytes is a 400.
#[test]
fn the_leads_list_filters_by_stage() {
    let l = loaded();
    let url = l
        .worker
        .url(&format!("/v1/sites/{}/leads?stage=opportunity", l.site.id));
    let a = http::get(&url, Some(&l.site.read_key)).expect("leads");
    assert_eq!(a.status, 200, "{}", a.text);
    let got: Vec<(&str, &Value)> = a.json["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .map(|x| (x["email"].as_str().unwrap_or(""), &x["stages"]))
        .collect();
    assert_eq!(
        got,
        [
            ("dan@example.com", &json!(["opportunity", "customer"])),
            ("ann@example.com", &json!(["opportunity", "customer"]))
        ]
    );
    let long = "x".repeat(65);
    let a = http::get(
        &l.worker
            .url(&format!("/v1/sites/{}/leads?stage={long}", l.site.id)),
        Some(&l.site.read_key),
    )
    .expect("leads");
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json["error"]["code"], json!("invalid_parameter"));
}
