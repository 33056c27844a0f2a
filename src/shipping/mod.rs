//! Shipping (placeholder while the module is written).
pub mod kind;
