//! Alerts: MQTT with Home Assistant discovery, and HMAC-SHA256-signed webhooks. Delivery
//! runs in its own tasks behind bounded queues, so a broken broker or a dead endpoint
//! never delays recording.
