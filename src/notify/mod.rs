//! Notifications (docs/notifications.md): `Notifier`s (channels) and the
//! Rollout's subscriptions; what fired between two statuses, the ledger that
//! makes delivery at-least-once and never repeated across restarts, the
//! channels' bodies — all PURE — and the controller that delivers.

pub mod channel;
pub mod controller;
pub mod deliver;
pub mod email;
pub mod ledger;
pub mod payload;
pub mod ready;
pub mod report;
pub mod secrets;
pub mod smtp;
pub mod subscriptions;
pub mod template;
pub mod trigger;
