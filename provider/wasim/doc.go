// Package wasim is a simulator of the Unipile-style WhatsApp provider API that sendworker sends
// through (see docs/PROVIDER-API.md). The real provider cannot be reached from development, CI or
// benchmarks, so wasim stands in for it: it speaks the same HTTP API with realistic state
// (accounts, chats, attendees, messages) and injects the faults a careful client must survive.
// It is a test double, never a provider: nothing it does reaches WhatsApp.
//
// A Sim is an http.Handler serving
//   - the 11 provider operations under /api/v1, with the provider's JSON shapes (0/1 flags,
//     ISO-8601 millisecond stamps, problem-details errors, keyset cursors);
//   - POST /oauth/token, an OAuth2 token endpoint (client_credentials, refresh_token) for the
//     deployments that front the provider with OAuth2;
//   - /_sim/..., control endpoints (JSON, no provider auth) for programs running wasim as a
//     separate process: GET/PUT /_sim/faults, GET /_sim/deliveries?since=N,
//     PUT /_sim/accounts/{id}/status, PUT /_sim/accounts/{id}/error,
//     PUT /_sim/accounts/{id}/contacts/{provider_id}/other_id, POST /_sim/chats/{id}/incoming,
//     GET /_sim/stats, GET/PUT /_sim/webhook. With a webhook set (SetWebhook, the control API or
//     wasim -webhook-url), a contact writing through the control API and an account status change
//     are posted as the provider's webhook events, retried 5 times when not answered 200.
//
// Listen runs a Sim on a real port; cmd/wasim wraps it as a binary. Every sending call is recorded
// as a Delivery, so a test can prove what reached the "provider" and how it was answered.
//
// # Choices where the provider's documentation is silent or unsure
//
//   - Auth: X-API-KEY when Options.APIKey is set; bearer tokens from /oauth/token when OAuth
//     clients or refresh tokens are set; none at all when neither is (development). A missing
//     credential is 401 errors/missing_credentials, a wrong or expired one errors/invalid_credentials.
//   - Account health: sending calls (send, create, reaction, edit, delete) on an account whose
//     status is not OK or CONNECTED answer 401 errors/disconnected_account. Reads still answer.
//     SetAccountError makes an account's sending calls answer one of the provider's other
//     account-level types (401 expired_credentials, disconnected_feature, wrong_account,
//     multiple_sessions, 503 no_client_session, no_channel) whatever its status.
//   - One person, two ids: a contact may have an other_id (its @lid for a phone-form contact, or
//     the reverse). chats_create accepts either; the person's single chat shows attendee_provider_id
//     as the contact's provider_id and provider_id as the other id. Without other_id a chat's
//     provider_id is the contact's id, and nothing links the two forms.
//   - accounts_sync answers 501 errors/feature_not_implemented (all accounts are WhatsApp).
//   - Lists: limit 1–250 (default 100), cursors are opaque keyset positions; a repeated or
//     malformed limit, cursor, before or after is 400 errors/invalid_parameters. before/after are
//     strict bounds on the chat's last activity or the message's timestamp. The attendee list
//     has no paging and no "cursor" key. An unknown account_id filter on chats_list gives an
//     empty list.
//   - Message text is null when empty (attachment-only or deleted messages).
//   - Text over 10,000 characters: 400 errors/too_many_characters. A file part over 15 MiB, or a
//     body over 64 MiB: 400 errors/content_too_large, as the reference documents it. A file the
//     provider would reject as media (an executable: .exe, .msi, .apk...): 415
//     errors/unsupported_media_type. A sending body that is not multipart/form-data, or a JSON
//     body (reaction, edit) with another content type: 400 errors/invalid_parameters. Unknown form
//     fields and JSON keys are ignored.
//   - chats_create takes attendee provider ids (33612345678@s.whatsapp.net) of contacts the
//     account already knows; anything else, raw phone numbers included, is 422
//     errors/invalid_recipient. One known attendee with an existing single chat posts into it;
//     one without a chat gets a new single chat; several make a new group (named by "title").
//   - A chat that does not belong to the given account_id: 403 errors/account_mismatch.
//     A read-only chat (read_only 1 or 2): 422 errors/cant_send_message, for messages and
//     reactions; a reaction in a chat whose disabledFeatures lists "reactions": 400
//     errors/invalid_action. muted_until is null, or -1 for a chat muted for good. An unknown
//     quote_id: 404.
//   - messages_reaction answers 200 {"object":"MessageReactionAdded"}, on /reaction only (the
//     reference's route); the account's new reaction replaces its old one.
//   - messages_edit and messages_delete only act on the account's own messages (is_sender 1);
//     another's message is 403 errors/account_mismatch. Within 15 minutes (edit) or 60 hours
//     (delete) of the message timestamp they apply; past the window, or on a deleted message,
//     they answer 200 and change nothing, as the provider may. Delivery.Applied tells which.
//   - Faults: one uniform draw per /api/v1 request picks 500, 503, 429 (with Retry-After when
//     configured), 504 (sending calls: stored, then 504) or accept-then-drop (sending calls:
//     stored, then the connection is closed without a response) or a late store (sending calls:
//     applied only Faults.LateStoreDelay after they arrived, never answered: a provider that
//     completes a request its client gave up on). Latency is added to every /api/v1 request.
//     Faults.ClockOffset shifts the provider's clock (message and chat timestamps, edit and
//     delete windows, the Date header) against the real one. /oauth/token and /_sim/ never fail
//     by injection.
//
// # Not simulated
//
// WhatsApp's anti-ban behaviour (disconnecting accounts that send too much or to cold contacts),
// real rate limits, webhooks, read receipts and delivery status changes over time, media
// download, the accounts' other routes, and any provider id form beyond @s.whatsapp.net and @lid.
package wasim
