//! One file per resource; each exposes `router()`.

pub mod accounts;
pub mod admin;
pub mod admin_kb;
pub mod admin_settings;
pub mod assist;
pub mod auth;
pub mod channel_api;
pub mod channel_callbacks;
pub mod channels;
pub mod conversations;
pub mod health;
pub mod kb;
pub mod me;
pub mod metrics;
pub mod pages;
pub mod quick_replies;
pub mod stats;
pub mod visitors;
pub mod webhooks;
pub mod ws;
