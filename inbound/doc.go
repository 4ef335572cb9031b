// Package inbound receives the provider's webhook events (new messages, receipts, account
// status) and acts on them within seconds: a contact's reply ends the chat's pending sends
// (skipped/contact_replied), an opt-out keyword puts the contact on the opt-out list and ends its
// pending sends (skipped/opted_out), an account status opens or closes the account breaker, and
// delivery receipts are written back to the send they concern.
//
// The Receiver authenticates an event (a shared secret header, two accepted during a rotation,
// compared in constant time), validates it and appends it to a Redis stream, then answers 200:
// the provider retries an event not answered 200 within 30 s. The Processor (Start, Stop), run
// by every replica as one consumer group, acts on each entry, acknowledges and deletes it (its
// body holds message text) and logs the outcome to a capped log stream. A consumer that dies
// leaves its entries pending; another claims them after MinIdle, and the same consumer re-reads
// its own after a restart. Every effect is one ledger script deduped by the event's key (or
// idempotent: breakers), so retries and re-deliveries are processed once.
//
// The package never sends anything to the provider, never logs message text, and never decides
// anything the ledger's scripts do not re-check atomically.
package inbound
