//! The console's alerts on a device (issue 21), in headless Chromium at
//! phone width: with a web_push channel configured, "Notify this device"
//! is in the top bar (a 44 px toggle), the service worker is registered
//! for the whole console (`/console/sw.js`, scope `/`), a push message
//! becomes a notification naming the order, and a tapped alert brings the
//! open console to the order.
//!
//! The subscription itself needs the browser's push service (on the
//! network, closed here); `tests/alerts.rs` covers what the daemon does
//! with one, against a push service written in the test.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::Browser;
use common::{sim_rig, wait_ready, SimRig};
use serde_json::json;

const WORKFLOW: &str = r#"
name: tell_phones
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: tell
    call: notify.send
    with:
      channel: phones
      text: "Order ${{ order.id }} is ready to pack"
  - id: done
    end: notified
"#;

#[actix_rt::test]
async fn notify_this_device_and_the_service_worker_show_alerts() {
    browser::require_chromium();
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "cp",
        orderflow::simulator::SimulatorArgs {
            shops: 1,
            ..Default::default()
        },
        50.0,
        ("tell.yaml", WORKFLOW),
    )
    .await;
    cfg.notify.channels.insert(
        "phones".into(),
        orderflow::notify::ChannelConfig {
            kind: orderflow::notify::Kind::WebPush,
            sub: Some("mailto:ops@example.com".into()),
            ..Default::default()
        },
    );
    cfg.notify.default_channel = "phones".into();
    let daemon = orderflow::daemon::Daemon::start(cfg, orderflow::runtime::Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&common::http(), &base).await;

    let b = Browser::start(375, 740).await;
    b.goto(&format!("{base}/#/orders")).await;
    b.wait_for("#push-toggle").await;
    let toggle = b
        .js(
            "const t = document.getElementById('push-toggle'); const r = t.getBoundingClientRect();
             return {pressed: t.getAttribute('aria-pressed'), name: t.textContent, in_bar: !!t.closest('.topbar-right'), w: r.width, h: r.height};",
            json!([]),
        )
        .await;
    assert_eq!(toggle["pressed"], "false", "{toggle}");
    assert_eq!(toggle["name"], "Notify this device", "{toggle}");
    assert_eq!(toggle["in_bar"], true, "{toggle}");
    assert!(
        toggle["w"].as_f64().unwrap() >= 44.0 && toggle["h"].as_f64().unwrap() >= 44.0,
        "a 44 px tap target at 375 px: {toggle}"
    );
    let scopes = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.getRegistrations().then((rs) => done(rs.map((r) => [r.scope, r.active && r.active.scriptURL])));",
            json!([]),
        )
        .await;
    assert_eq!(
        scopes,
        json!([[format!("{base}/"), format!("{base}/console/sw.js")]]),
        "{scopes}"
    );

    // A push message, as the browser's push service would hand it to the
    // worker, becomes a notification that opens the order.
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": base, "permissions": ["notifications"]}),
    )
    .await;
    b.cdp("ServiceWorker.enable", json!({})).await;
    let payload = json!({
        "title": "orderflow: order 5764",
        "body": "Order 5764 is ready to pack",
        "kind": "workflow",
        "order_id": "5764",
        "url": "/#/orders/5764",
        "tag": "orderflow-order-5764",
        "at": 1_764_000_000,
    })
    .to_string();
    let notifications = || async {
        b.js_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready.then((r) => r.getNotifications())
               .then((ns) => done(ns.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}))))
               .catch((e) => done(String(e)));",
            json!([]),
        )
        .await
    };
    // DevTools learns of the registration a moment after `enable` (a push
    // to one it does not know yet is dropped without a word), and its id is
    // one of a fresh profile's first: push until the notification shows.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let shown = loop {
        for id in 0..3 {
            b.cdp(
                "ServiceWorker.deliverPushMessage",
                json!({"origin": base, "registrationId": id.to_string(), "data": payload}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shown = notifications().await;
        if shown.as_array().is_some_and(|a| !a.is_empty()) {
            break shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notification shown: {shown}"
        );
    };
    assert_eq!(
        shown,
        json!([{
            "title": "orderflow: order 5764",
            "body": "Order 5764 is ready to pack",
            "tag": "orderflow-order-5764",
            "url": format!("{base}/#/orders/5764"),
        }]),
        "{shown}"
    );
    // A tap with the console open: the worker asks it to show the order.
    b.js(
        "navigator.serviceWorker.dispatchEvent(new MessageEvent('message', {data: {type: 'orderflow-open', url: arguments[0]}}));",
        json!([format!("{base}/#/orders/5764")]),
    )
    .await;
    b.wait_until("the order's page", "location.hash === '#/orders/5764'")
        .await;
    // Another site's URL is not followed.
    b.js(
        "navigator.serviceWorker.dispatchEvent(new MessageEvent('message', {data: {type: 'orderflow-open', url: 'https://evil.example/#/x'}}));",
        json!([]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.js("return location.hash;", json!([])).await,
        "#/orders/5764"
    );

    drop(b);
    daemon.shutdown().await;
    sim.stop().await;
}
