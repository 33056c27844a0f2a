//! Random sequences of set / adjust / reserve / release / commit against a
//! real sled database, checking conservation after every operation:
//! - `reserved ≤ on_hand` in every warehouse;
//! - each warehouse's `reserved` equals the units of the held reservations
//!   that name it;
//! - `on_hand` moves only by accepted sets and adjusts and by commits.

use std::collections::BTreeMap;

use orderflow::inventory::{Error, Inventory, InventoryConfig, ReservationState};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, u32),
    Adjust(usize, usize, i64),
    Reserve(usize, Vec<(usize, u32)>, Option<usize>),
    Release(usize),
    Commit(usize),
}

const SKUS: [&str; 3] = ["A", "B", "C"];
const WHS: [Option<&str>; 3] = [None, Some("W1"), Some("W2")];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..3usize, 0..8u32).prop_map(|(s, w, n)| Op::Set(s, w, n)),
        (0..3usize, 0..3usize, -4..5i64).prop_map(|(s, w, d)| Op::Adjust(s, w, d)),
        (
            0..6usize,
            prop::collection::vec((0..3usize, 1..4u32), 1..3),
            prop::option::of(1..3usize)
        )
            .prop_map(|(o, u, w)| Op::Reserve(o, u, w)),
        (0..6usize).prop_map(Op::Release),
        (0..6usize).prop_map(Op::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn conservation_holds_after_every_operation(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let db = sled::open(dir.path()).unwrap();
            let inv = Inventory::open(&db, InventoryConfig::default()).unwrap();
            // Expected on hand per (sku, warehouse key).
            let mut on_hand: BTreeMap<(String, String), i64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Set(s, w, n) => {
                        if inv.set(SKUS[s], WHS[w], n).await.is_ok() {
                            on_hand.insert((SKUS[s].into(), WHS[w].unwrap_or("").into()), i64::from(n));
                        }
                    }
                    Op::Adjust(s, w, d) => {
                        let k = (SKUS[s].to_string(), WHS[w].unwrap_or("").to_string());
                        match inv.adjust(SKUS[s], WHS[w], d).await {
                            Ok(_) => *on_hand.entry(k).or_insert(0) += d,
                            Err(Error::BelowReserved { .. }) => {}
                            Err(e) => panic!("adjust: {e}"),
                        }
                    }
                    Op::Reserve(o, u, w) => {
                        let mut units = BTreeMap::new();
                        for (s, n) in u {
                            *units.entry(SKUS[s].to_string()).or_insert(0) += n;
                        }
                        match inv.reserve(&format!("o{o}"), &units, w.and_then(|w| WHS[w])).await {
                            Ok(_) | Err(Error::OutOfStock { .. }) | Err(Error::UnmappedSku { .. }) => {}
                            Err(e) => panic!("reserve: {e}"),
                        }
                    }
                    Op::Release(o) => {
                        inv.release(&format!("o{o}")).await.unwrap();
                    }
                    Op::Commit(o) => {
                        let before = inv.reservation(&format!("o{o}")).await.unwrap();
                        match inv.commit(&format!("o{o}")).await {
                            Ok(true) => {
                                for l in before.unwrap().lines {
                                    *on_hand.get_mut(&(l.sku, l.warehouse.unwrap_or_default())).unwrap() -= i64::from(l.units);
                                }
                            }
                            Ok(false) | Err(Error::NoReservation(_)) | Err(Error::Released { .. }) => {}
                            Err(e) => panic!("commit: {e}"),
                        }
                    }
                }
                // Reserved per (sku, warehouse) from the held reservations.
                let mut reserved: BTreeMap<(String, String), u64> = BTreeMap::new();
                for o in 0..6 {
                    if let Some(r) = inv.reservation(&format!("o{o}")).await.unwrap() {
                        if r.state == ReservationState::Held {
                            for l in r.lines {
                                *reserved.entry((l.sku, l.warehouse.unwrap_or_default())).or_insert(0) += u64::from(l.units);
                            }
                        }
                    }
                }
                for s in inv.list().await.unwrap() {
                    for w in &s.warehouses {
                        let k = (s.sku.clone(), w.warehouse.clone().unwrap_or_default());
                        assert!(w.reserved <= w.on_hand, "{k:?}: {w:?}");
                        assert_eq!(u64::from(w.reserved), reserved.get(&k).copied().unwrap_or(0), "{k:?}");
                        assert_eq!(i64::from(w.on_hand), on_hand.get(&k).copied().unwrap_or(0), "{k:?}");
                    }
                }
            }
        });
    }
}
