//! The console overview in one call (`GET /api/v1/overview`) and pushed
//! over the live stream (`event: overview`): the stats with the most urgent
//! orders at risk, soonest ship-by first.

mod common;

use std::time::Duration;

use common::{get_json, post_json, wire_order, WAIT_WORKFLOW};
use serde_json::json;

#[actix_rt::test]
async fn the_overview_is_one_call_and_follows_the_live_stream() {
    let rig = common::sim_rig(
        "ov",
        common::quiet_sim(),
        50.0,
        ("hold_still.yaml", WAIT_WORKFLOW),
    )
    .await;
    let (daemon, base) = common::start_daemon(&rig.cfg).await;
    let c = reqwest::Client::new();
    let shop = rig.sim.shops()[0].0.clone();
    let now = chrono::Utc::now().timestamp();
    // Three orders due within the 6 h margin (the soonest last), two not.
    for (id, due) in [
        ("6100000000000001", now + 3 * 3600),
        ("6100000000000002", now + 2 * 86_400),
        ("6100000000000003", now + 2 * 3600),
        ("6100000000000004", now + 3 * 86_400),
        ("6100000000000005", now + 3600),
    ] {
        let mut o = wire_order(id, now);
        o["rts_sla_time"] = json!(due);
        let (st, v) = post_json(
            &c,
            &format!("{base}/api/v1/events"),
            &json!({"id": format!("ev-{id}"), "shop_id": shop, "order": o}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let ov = common::eventually(
        Duration::from_secs(20),
        "five orders in the overview",
        || {
            let (c, u) = (c.clone(), format!("{base}/api/v1/overview"));
            async move {
                let (st, v) = get_json(&c, &u).await;
                (st == 200 && v["stats"]["total"] == 5 && v["at_risk"].as_array()?.len() == 3)
                    .then_some(v)
            }
        },
    )
    .await;
    let at_risk: Vec<&str> = ov["at_risk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        at_risk,
        ["6100000000000005", "6100000000000003", "6100000000000001"],
        "soonest first: {ov}"
    );
    assert_eq!(ov["stats"]["at_risk"], 3, "{ov}");
    assert_eq!(ov["exceptions"], json!([]), "{ov}");

    // A change reaches an open live stream as an `overview` event.
    let mut live = c.get(format!("{base}/api/v1/live")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let mut o = wire_order("6100000000000006", now);
    o["rts_sla_time"] = json!(now + 600);
    let (st, _) = post_json(
        &c,
        &format!("{base}/api/v1/events"),
        &json!({"id": "ev-6100000000000006", "shop_id": shop, "order": o}),
    )
    .await;
    assert_eq!(st, 200);
    let mut text = String::new();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(chunk)) = live.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(ev) = text
                .split("\n\n")
                .find(|e| e.starts_with("event: overview") && e.contains("6100000000000006"))
            {
                return Some(ev.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("no overview event with the new order: {text}"));
    let data: serde_json::Value =
        serde_json::from_str(got.split_once("data: ").unwrap().1.trim()).unwrap();
    assert_eq!(data["at_risk"][0]["order_id"], "6100000000000006", "{data}");
    assert_eq!(data["stats"]["total"], 6, "{data}");
    daemon.shutdown().await;
}
