//! Payment validation on orders as TikTok's wire sends them: every paid
//! order the simulator generates adds up to the cent; unpaid ones and
//! tampered amounts fail with the arithmetic in the message.

#[path = "common/tiktok.rs"]
mod common;

use common::*;
use orderflow::order::Money;
use orderflow::payment::{self, Error};
use orderflow::simulator::SimulatorArgs;
use orderflow::tiktok::{GatewayHandle, Priority};
use serde_json::json;

#[actix_rt::test]
async fn simulated_orders_add_up_exactly() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let info = sim_get(&sim, "/sim/shops").await;
    let skus: Vec<String> = info["skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut ids = Vec::new();
    // Mixed baskets: some below the free-shipping line, some above.
    for (i, sku) in skus.iter().enumerate() {
        let items = json!([{"sku_id": sku, "quantity": 1 + i % 3}, {"sku_id": skus[(i + 7) % skus.len()], "quantity": 1}]);
        for (id, _) in
            create_orders(&sim, json!({"shop_id": shop, "items": items, "count": 2})).await
        {
            ids.push(id);
        }
    }
    let unpaid = create_orders(&sim, json!({"shop_id": shop, "status": "UNPAID"})).await[0]
        .0
        .clone();
    let gw = GatewayHandle::start(&config(&sim, 50.0), sink()).unwrap();
    let mut checked = 0;
    for id in &ids {
        let o = gw
            .order_detail(&shop, id, Priority::sync(None))
            .await
            .unwrap();
        assert!(o.payment.total_amount.0 > 0);
        payment::validate(&o, Money(0)).unwrap_or_else(|e| panic!("{e}"));
        checked += 1;

        // One cent off in total_amount fails at zero tolerance, passes at 0.01.
        let mut t = o.clone();
        t.payment.total_amount = Money(t.payment.total_amount.0 + 1);
        assert!(matches!(
            payment::validate(&t, Money(0)),
            Err(Error::Mismatch {
                field: "total_amount",
                ..
            })
        ));
        assert!(payment::validate(&t, payment::tolerance_from_units(0.01).unwrap()).is_ok());
    }
    assert_eq!(checked, 2 * skus.len());

    let o = gw
        .order_detail(&shop, &unpaid, Priority::sync(None))
        .await
        .unwrap();
    let e = payment::validate(&o, Money(1)).unwrap_err();
    assert!(matches!(e, Error::NotPaid { .. }), "{e}");
    assert!(e.to_string().contains("UNPAID"), "{e}");
    sim.stop().await;
}
