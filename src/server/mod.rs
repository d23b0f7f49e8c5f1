//! HTTPS webhook and plain-HTTP admin servers (being written), and the webhook routes.

pub mod webhook;
