//! One file per resource; each exposes `router()`.

pub mod health;
pub mod kb;
