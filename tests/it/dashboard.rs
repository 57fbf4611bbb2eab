//! The operator dashboard (`/dashboard`) as a person or a script meets it: signing in with
//! the operator token (form and cookie, or a bearer header) and every way of being refused;
//! the overview's chart and funnel numbers for the fixed data set of `funnels.rs`; the
//! journey search and a journey's timeline with its root cause and action; hostile
//! identifiers and attributes printed as text; bad query values answered with a 400 that
//! names the parameter.

use handoff_core::clock::now_ms;
use handoff_core::domain::JourneyId;
use handoff_core::storage::{Journeys, StoredEvent};
use handoff_server::config::Secret;
use handoff_server::dashboard::cookie_value;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::json;

use crate::funnels::{T0, fixed_data_set, journey};
use crate::on_both_backends;
use crate::support::app::set_cookie;
use crate::support::{Backend, TestApp, TestOptions};

const TOKEN: &str = "test-operator-token-0123456789";
const HOSTILE_ID: &str = "<script>alert('id')</script>@example.com";
const HOSTILE_ATTR: &str = "<img src=x onerror=alert(1)>";

/// A browser that keeps no cookies and follows no redirects, so each step is visible.
fn browser() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn page(response: Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn with_cookie(request: RequestBuilder, value: &str) -> RequestBuilder {
    request.header(COOKIE, format!("handoff_operator={value}"))
}

fn origin(app: &TestApp) -> String {
    app.origin.as_str().trim_end_matches('/').to_owned()
}

async fn sign_in(app: &TestApp, token: &str, origin: Option<&str>, next: Option<&str>) -> Response {
    let mut form = vec![("token", token)];
    if let Some(next) = next {
        form.push(("next", next));
    }
    let mut request = browser().post(app.url("/dashboard/sign-in")).form(&form);
    if let Some(o) = origin {
        request = request.header("origin", o);
    }
    request.send().await.unwrap()
}

/// The value of the sign-in cookie a response set.
fn cookie_of(response: &Response) -> String {
    let header = set_cookie(response.headers(), "handoff_operator").expect("a sign-in cookie");
    header.trim_start_matches("handoff_operator=").split(';').next().unwrap().to_owned()
}

/// Text as the templates print it (minijinja escapes `/` too).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

fn unesc(s: &str) -> String {
    s.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// How many journeys a page links to.
fn journey_links(html: &str) -> usize {
    html.matches(&format!("href=\"{}", esc("/dashboard/journeys/"))).count()
}

fn is_sign_in_form(html: &str) -> bool {
    html.contains("action=\"/dashboard/sign-in\"")
        && html.contains("<label for=\"token\">Operator token</label>")
        && html.contains("type=\"password\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_the_operator_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let get = |path: &str| browser().get(app.url(path));

    // No sign-in: the overview is the form (200), other pages the same form with 401.
    let (status, html) = page(get("/dashboard").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_sign_in_form(&html), "{html}");
    assert!(html.contains("HANDOFF_OPERATOR_TOKEN") && html.contains("operator-token"), "{html}");
    assert!(html.contains("<main"));
    let (status, html) = page(get("/dashboard/journeys?flow=qr-approval").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(is_sign_in_form(&html));
    let next = format!("value=\"{}\"", esc("/dashboard/journeys?flow=qr-approval"));
    assert!(html.contains(&next), "comes back afterwards: {html}");

    // A wrong token: the form again, with the reason, 403, and no cookie.
    let wrong = sign_in(&app, "not-the-operator-token", Some(&origin(&app)), None).await;
    assert!(set_cookie(wrong.headers(), "handoff_operator").is_none());
    let (status, html) = page(wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(is_sign_in_form(&html) && html.contains("not this server&#x27;s operator token"), "{html}");
    assert!(html.contains("aria-invalid=\"true\""));

    // The right token: a cookie scoped to the dashboard, and back to the page asked for.
    let ok = sign_in(&app, TOKEN, Some(&origin(&app)), Some("/dashboard/journeys?flow=qr-approval")).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], "/dashboard/journeys?flow=qr-approval");
    let header = set_cookie(ok.headers(), "handoff_operator").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"] {
        assert!(header.contains(part), "{header} lacks {part}");
    }
    assert!(!header.contains("Secure"), "plain http origin: {header}");
    let cookie = cookie_of(&ok);
    let (status, html) = page(with_cookie(get("/dashboard"), &cookie).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign-in overview") && html.contains("Sign out"), "{html}");
    let (status, _) = page(with_cookie(get("/dashboard/journeys"), &cookie).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Somewhere else after signing in is never another site.
    let off_site = sign_in(&app, TOKEN, None, Some("//evil.example/dashboard")).await;
    assert_eq!(off_site.headers()[LOCATION], "/dashboard");

    // Scripts: the bearer header, as for the API.
    let (status, html) = page(get("/dashboard/journeys").bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, html) =
        page(get("/dashboard/journeys").bearer_auth("wrong-token-0123456789").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(is_sign_in_form(&html));
    let (status, _) = page(get("/dashboard").bearer_auth("wrong-token-0123456789").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Forged, foreign and expired cookies sign nobody in.
    let (expiry, tag) = cookie.split_once('.').unwrap();
    let later = format!("{}.{tag}", expiry.parse::<i64>().unwrap() + 1);
    let foreign = cookie_value(&Secret::new("another-servers-token-0123"), now_ms() + 3_600_000).unwrap();
    let expired = cookie_value(&Secret::new(TOKEN), now_ms() - 1_000).unwrap();
    for bad in [later, foreign, expired, "12345.abcdef".to_owned(), "x".to_owned()] {
        let (status, html) = page(with_cookie(get("/dashboard/journeys"), &bad).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(is_sign_in_form(&html));
        let (status, html) = page(with_cookie(get("/dashboard"), &bad).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(is_sign_in_form(&html) && html.contains("expired or is no longer valid"), "{bad}: {html}");
    }

    // Posts from another site are refused: sign-in (even with the right token) and sign-out.
    for evil in ["https://evil.example", "null"] {
        let refused = sign_in(&app, TOKEN, Some(evil), None).await;
        assert!(set_cookie(refused.headers(), "handoff_operator").is_none());
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{evil}");
    }
    let cross_site = browser()
        .post(app.url("/dashboard/sign-in"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let out = browser().post(app.url("/dashboard/sign-out")).header("origin", "https://evil.example");
    assert_eq!(out.send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // Signing out clears the cookie.
    let out = browser().post(app.url("/dashboard/sign-out")).header("origin", origin(&app)).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(out.headers(), "handoff_operator").unwrap();
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/dashboard"), "{cleared}");
    let (status, html) = page(get(out.headers()[LOCATION].to_str().unwrap()).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You have signed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_token_is_slowed_down() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..10 {
        let wrong = sign_in(&app, &format!("guess-number-{i:04}-xxxxxxxx"), Some(&origin(&app)), None).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "attempt {i}");
    }
    // The eleventh attempt in a minute is refused before the token is even compared.
    let limited = sign_in(&app, TOKEN, Some(&origin(&app)), None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(set_cookie(limited.headers(), "handoff_operator").is_none());
    let (_, html) = page(limited).await;
    assert!(html.contains("Too many sign-in attempts") && is_sign_in_form(&html));
    // Scripts with the bearer token are not affected.
    let (status, _) = operator_get(&app, "/dashboard/journeys").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_on_https() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions { https_origin: true, ..TestOptions::default() }).await;
    let ok = sign_in(&app, TOKEN, Some(&origin(&app)), None).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(ok.headers(), "handoff_operator").unwrap().contains("Secure"));
}

/// A cross-device journey the person cancelled after 5 s, with a hostile identifier,
/// attribute and OS name.
fn cancelled_journey(start: i64) -> (JourneyId, Vec<StoredEvent>) {
    let events = journey(
        "<b>EvilOS</b>",
        "Chrome",
        "cross-device",
        start,
        vec![
            (
                "server",
                "decision.made",
                100,
                json!({ "identifier": HOSTILE_ID, "verdict": "cross-device", "reasons": [{"code": "hybrid-available"}] }),
            ),
            ("desktop", "ceremony.started", 500, json!({ "hints": ["hybrid"], "note": HOSTILE_ATTR })),
            ("desktop", "webauthn.failed", 5_500, json!({ "errorName": "NotAllowedError", "elapsedMs": 5_000 })),
        ],
    );
    (events[0].journey_id, events)
}

async fn fill(app: &TestApp) -> (handoff_store::Database, JourneyId) {
    let db = handoff_store::Database::connect(&app.database_url).await.unwrap();
    db.record(&fixed_data_set()).await.unwrap();
    let (cancelled, events) = cancelled_journey(T0 + 10);
    db.record(&events).await.unwrap();
    db.finish_idle(T0 + 10_000_000, T0 + 10_000_000, 1_000).await.unwrap();
    (db, cancelled)
}

async fn operator_get(app: &TestApp, path: &str) -> (StatusCode, String) {
    page(browser().get(app.url(path)).bearer_auth(TOKEN).send().await.unwrap()).await
}

on_both_backends!(the_overview_charts_the_funnel, |backend| async move {
    let app = TestApp::spawn(backend).await;
    fill(&app).await;
    let window = format!("from={}&to={}", T0 - 1_000, T0 + 3_600_000);
    let (status, html) = operator_get(&app, &format!("/dashboard?flow=qr-approval&{window}&by=os")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // The chart: inline SVG with bars, summarised for screen readers with the table's numbers.
    assert!(html.contains("<svg class=\"chart\" role=\"img\""), "{html}");
    assert!(html.matches("<rect").count() >= 7);
    assert!(html.contains(
        "aria-label=\"Funnel of the qr-approval flow, journeys reaching each step: shown 5 (100.0%), scanned 4 \
         (80.0%), mobile-opened 3 (60.0%), confirmation-shown 3 (60.0%), confirmed 2 (40.0%), callback-received 2 \
         (40.0%), session 2 (40.0%)\""
    ));
    assert!(html.contains("<title>Funnel of the qr-approval flow"));
    // The table beside it.
    for (step, count, of_all, of_previous) in [
        ("shown", 5, "100.0%", "100.0%"),
        ("scanned", 4, "80.0%", "80.0%"),
        ("mobile-opened", 3, "60.0%", "75.0%"),
        ("confirmed", 2, "40.0%", "66.7%"),
        ("session", 2, "40.0%", "100.0%"),
    ] {
        let row =
            format!("<tr><th scope=\"row\">{step}</th><td>{count}</td><td>{of_all}</td><td>{of_previous}</td></tr>");
        assert!(html.contains(&row), "no row {row}");
    }
    assert!(html.contains("5 journeys, <strong>40.0%</strong> signed in"), "{html}");
    assert!(html.contains("p50 10.0 s, p90 20.0 s, p99 20.0 s"));
    // Root causes with the fix to test first, each linking to its journeys.
    for cause in ["handoff-failure", "scan-failure", "wrong-account"] {
        assert!(html.contains(&format!(">{cause}</a></th><td>1</td><td>33.3%</td>")), "{cause}");
    }
    assert!(html.contains("Show a larger, higher-contrast QR code"));
    assert!(html.contains(&esc("/dashboard/journeys?flow=qr-approval&rootCause=scan-failure")));
    // The breakdown by OS, largest first.
    assert!(html.contains("<tr><th scope=\"row\">Windows</th><td>3</td><td>3</td><td>3</td>"), "{html}");
    assert!(
        html.contains("aria-label=\"Signed in, by os, in the qr-approval flow: Windows 66.7% of 3, macOS 0.0% of 2\"")
    );
    // Insights need more journeys than this; the page says so.
    assert!(html.contains("No segment differs significantly"));
    // The search form is on the page.
    assert!(html.contains("action=\"/dashboard/journeys\"") && html.contains("<label for=\"s-identifier\">"));

    // Every flow with journeys; a hostile OS name is text, in the table and in the chart.
    let (status, html) = operator_get(&app, &format!("/dashboard?{window}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"flow-qr-approval\"") && html.contains("id=\"flow-cross-device\""));
    assert!(!html.contains("<b>EvilOS</b>") && html.contains("&lt;b&gt;EvilOS&lt;&#x2f;b&gt;"), "{html}");
    assert!(html.contains("&lt;b&gt;EvilOS&lt;/b&gt;"), "the chart's own escaping");
    // The default window is the last 7 days: this data set is in 2027, so nothing shows.
    let (status, html) = operator_get(&app, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No journeys in this window yet"));
});

on_both_backends!(search_and_timeline_show_the_root_cause_and_action, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (db, cancelled) = fill(&app).await;

    // Search by the (hostile) identifier: one row, printed as text, linking to the timeline.
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("identifier", HOSTILE_ID).finish();
    let (status, html) = operator_get(&app, &format!("/dashboard/journeys?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains(&esc(HOSTILE_ID)));
    let link = format!("href=\"{}\"", esc(&format!("/dashboard/journeys/{cancelled}")));
    assert!(html.contains(&link), "{html}");
    assert_eq!(journey_links(&html), 1);
    assert!(html.contains("user-cancelled"));

    // The timeline: root cause, class, basis, evidence and the action; phases in words.
    let (status, html) = operator_get(&app, &format!("/dashboard/journeys/{cancelled}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<strong class=\"mono\">user-cancelled</strong> (user abandonment)"), "{html}");
    assert!(html.contains("<span class=\"basis basis-inferred\">inferred</span>"));
    assert!(html.contains("webauthn.failed with NotAllowedError on the desktop"));
    assert!(html.contains("offer the alternative right after a cancel"), "the action");
    assert!(html.contains("observed — shown by ceremony.started"));
    assert!(html.contains("inferred — implied by decision"), "no identifier.submitted event: {html}");
    assert!(html.contains("not reached — no event shows it"));
    for name in ["decision.made", "ceremony.started", "webauthn.failed"] {
        assert!(html.contains(&format!("<td class=\"mono\">{name}")), "{name}");
    }
    assert!(html.contains("<dt>errorName</dt><dd>NotAllowedError</dd>"));
    assert!(!html.contains("<img src=x") && html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<script>alert"));

    // A journey id goes straight to its timeline; unknown and malformed ones are named.
    let jump = browser()
        .get(app.url(&format!("/dashboard/journeys?journeyId={cancelled}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(jump.status(), StatusCode::SEE_OTHER);
    assert_eq!(jump.headers()[LOCATION].to_str().unwrap(), format!("/dashboard/journeys/{cancelled}"));
    let unknown = JourneyId::new();
    let (status, html) = operator_get(&app, &format!("/dashboard/journeys?journeyId={unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains(&format!("No journey {unknown} has been recorded")));
    let (status, html) = operator_get(&app, "/dashboard/journeys?journeyId=not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("<strong>journeyId</strong>"));
    let (status, html) = operator_get(&app, &format!("/dashboard/journeys/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Journey not found"));
    let (status, _) = operator_get(&app, "/dashboard/journeys/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An inferred phase of the QR flow: the callback implied by the session.
    let (_, html) = operator_get(&app, "/dashboard/journeys?flow=qr-approval&outcome=success").await;
    assert_eq!(journey_links(&html), 2);

    // Pages of 50, newest first, with a link to the next.
    let many: Vec<StoredEvent> = (0..55)
        .flat_map(|i| {
            journey(
                "Linux",
                "Firefox",
                "fallback",
                T0 + 100 + i,
                vec![("desktop", "identifier.submitted", 0, json!({}))],
            )
        })
        .collect();
    db.record(&many).await.unwrap();
    let (status, html) = operator_get(&app, "/dashboard/journeys?flow=fallback").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journey_links(&html), 50);
    let next = unesc(html.split("class=\"button\" href=\"").nth(1).unwrap().split('"').next().unwrap());
    assert!(next.starts_with("/dashboard/journeys?flow=fallback&cursor="), "{next}");
    let (status, html) = operator_get(&app, &next).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(journey_links(&html), 5);
    assert!(!html.contains("class=\"button\" href="));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_values_are_named() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, param, says) in [
        ("/dashboard?from=soon", "from", "from must be a time"),
        ("/dashboard?to=later", "to", "to must be a time"),
        ("/dashboard?by=shoe-size", "by", "by must be one of os, browser"),
        ("/dashboard?flow=teleport", "flow", "flow must be one of passkey-local"),
        ("/dashboard?from=1h&to=2h", "from", "from must be before to"),
        ("/dashboard/journeys?outcome=maybe", "outcome", "outcome must be one of success"),
        ("/dashboard/journeys?rootCause=gremlins", "rootCause", "rootCause must be one of scan-failure"),
        ("/dashboard/journeys?from=yesterday", "from", "from must be a time"),
        ("/dashboard/journeys?cursor=bogus", "cursor", "cursor is not one this server gave"),
    ] {
        let (status, html) = operator_get(&app, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {html}");
        assert!(html.contains(&format!("<strong>{param}</strong>: {says}")), "{path}: {html}");
        assert!(html.contains("role=\"alert\""));
    }
    // Unknown dashboard pages are a 404 page; the stylesheet needs no sign-in.
    let (status, _) = operator_get(&app, "/dashboard/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let css = browser().get(app.url("/dashboard/assets/dashboard.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    // Pages carry a strict policy and are not cached.
    let response = browser().get(app.url("/dashboard")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "same-origin");
    // The API keeps its own referrer policy.
    let api = browser().get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(api.headers()["referrer-policy"], "no-referrer");
}
