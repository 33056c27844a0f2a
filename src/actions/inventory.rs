//! `inventory.*`: the order's reservation of stock, all or nothing, and
//! what becomes of it (released, or committed when the order ships).

use std::collections::BTreeMap;

use crate::inventory::{Error, KnownSku};
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, refuse_platform_fulfilled, Action, Call, ErrorKind};

pub const RESERVE: Action = Action {
    name: "inventory.reserve",
    doc: "Reserve every unit of the order, all or nothing.",
    args: &[arg(
        "warehouse_id",
        Str,
        false,
        "defaults to the order's warehouse",
    )],
    outputs: &["reservation_id", "units"],
    errors: &[ErrorKind::OutOfStock, ErrorKind::UnmappedSku],
    external: false,
};

pub const RELEASE: Action = Action {
    name: "inventory.release",
    doc: "Release the order's reservation (compensation for reserve).",
    args: &[],
    outputs: &["released"],
    errors: &[],
    external: false,
};

pub const COMMIT: Action = Action {
    name: "inventory.commit",
    doc: "Turn the reservation into a shipment: on hand and reserved both drop.",
    args: &[],
    outputs: &["committed"],
    errors: &[],
    external: false,
};

impl ErrorKind {
    /// The kind of an inventory failure (also what the stock API and the
    /// reservation metric report, through [`Error::kind`]).
    pub fn from_inventory(e: &Error) -> ErrorKind {
        match e {
            Error::OutOfStock { .. } => ErrorKind::OutOfStock,
            Error::UnmappedSku { .. } => ErrorKind::UnmappedSku,
            Error::BelowReserved { .. }
            | Error::Invalid(_)
            | Error::Import(_)
            | Error::Released { .. } => ErrorKind::Invalid,
            Error::NoReservation(_) => ErrorKind::NotFound,
            Error::Corrupt { .. } => ErrorKind::Rejected,
            Error::Storage(_) | Error::Task(_) => ErrorKind::Transient,
            Error::Tiktok(e) => ErrorKind::from_tiktok(e),
        }
    }
}

/// An inventory failure as the step's failure.
pub(super) fn failed(e: Error) -> ActionError {
    ErrorKind::from_inventory(&e).error(e.to_string())
}

pub(super) async fn reserve(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    if let Some(o) = c.order.as_deref() {
        refuse_platform_fulfilled(o, &c.effect.action)?;
    }
    let o = c.order()?;
    let wh = c.arg("warehouse_id").or_else(|| o.warehouse_id.clone());
    let demand = o.stock_demand();
    // The shop sells these SKUs (its pusher keeps TikTok's numbers of them
    // in step), and their seller SKUs name the items they take when nothing
    // else maps them.
    for d in &demand {
        let name = o
            .line_items
            .iter()
            .find(|l| l.sku_id == d.sku_id)
            .map(|l| l.product_name.clone())
            .unwrap_or_default();
        let known = KnownSku {
            sku_id: d.sku_id.clone(),
            seller_sku: d.seller_sku.clone(),
            product_id: d.product_id.clone(),
            name,
            virtual_bundle: false,
        };
        if let Err(e) = f.inventory.learn_sku(&known, &o.shop_id) {
            tracing::warn!(sku = %d.sku_id, error = %e, "Could not record which shop sells the SKU");
        }
    }
    let r = match f
        .inventory
        .reserve_demand(&o.id, &demand, wh.as_deref())
        .await
    {
        Ok(r) => r,
        Err(x) => {
            // Short of an item, or a SKU mapped to no item: told when stock
            // of the item arrives or the SKU is mapped (`restock`). Only
            // what is short waits.
            let short = match &x {
                Error::OutOfStock { sku, requested, .. } => Some((sku.clone(), *requested)),
                Error::UnmappedSku { sku } => demand
                    .iter()
                    .find(|d| &d.sku_id == sku)
                    .map(|d| (sku.clone(), d.units)),
                _ => None,
            };
            if let Some((key, n)) = short {
                if let Err(e) = f.inventory.wait_for_stock(
                    &o.id,
                    &o.shop_id,
                    o.deadlines.ship_by(),
                    &BTreeMap::from([(key, n)]),
                ) {
                    tracing::error!(order_id = %o.id, error = %e, "Could not remember the order as waiting for stock; its wait times out instead");
                }
            }
            // Name the product, as the order does, so a person knows which
            // of their items is missing.
            if let Error::UnmappedSku { sku } = &x {
                if let Err(e) = f.inventory.note_unmapped(sku) {
                    tracing::warn!(sku = %sku, error = %e, "Could not list the SKU as unmapped");
                }
                let d = demand.iter().find(|d| &d.sku_id == sku);
                let name = o
                    .line_items
                    .iter()
                    .find(|l| &l.sku_id == sku)
                    .map(|l| l.product_name.clone())
                    .unwrap_or_default();
                let seller = d.map(|d| d.seller_sku.clone()).unwrap_or_default();
                let label = match (name.as_str(), seller.as_str()) {
                    ("", "") => String::new(),
                    (name, "") => format!(" ({name})"),
                    ("", seller) => format!(" (seller SKU {seller})"),
                    (name, seller) => format!(" ({name}, seller SKU {seller})"),
                };
                return Err(ErrorKind::from_inventory(&x).error(format!(
                    "SKU {sku}{label} is not mapped to stock: no item is mapped to it; map it to an item (orderflow mappings set), or set the stock of its seller SKU, and the order goes on by itself"
                )));
            }
            return Err(failed(x));
        }
    };
    let mut keys: BTreeMap<String, u32> =
        demand.iter().map(|d| (d.sku_id.clone(), d.units)).collect();
    keys.extend(r.units());
    if let Err(e) = f.inventory.forget_waiting(&o.id, &keys) {
        tracing::warn!(order_id = %o.id, error = %e, "Could not forget the order's wait for stock");
    }
    let mut out = r.output();
    // Units taken from another warehouse than the order names (the seller's
    // default stock), said in the audit.
    if let Some(w) = &wh {
        let elsewhere: Vec<String> = r
            .lines
            .iter()
            .filter(|l| l.warehouse.as_deref() != Some(w.as_str()))
            .map(|l| {
                format!(
                    "{} units of item {} from {} (the order names warehouse {w}, which inventory does not stock it in)",
                    l.units,
                    l.sku,
                    l.warehouse.as_deref().unwrap_or("the default stock")
                )
            })
            .collect();
        if !elsewhere.is_empty() {
            out["note"] = serde_json::Value::String(elsewhere.join("; "));
        }
    }
    Ok(Data::from_json(&out))
}

pub(super) async fn release(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let o = c.order()?;
    let released = f.inventory.release(&o.id).await.map_err(failed)?;
    Ok(Data::map([("released", Data::Bool(released))]))
}

pub(super) async fn commit(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let o = c.order()?;
    let committed = f.inventory.commit(&o.id).await.map_err(failed)?;
    Ok(Data::map([("committed", Data::Bool(committed))]))
}
