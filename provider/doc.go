// Package provider is the typed HTTP client for the WhatsApp provider API (a Unipile-style REST
// API, version 1): account status, chats, messages and attendees to read, and the five sending
// calls (send a message, start a chat, react, edit, delete).
//
// Its one job beyond speaking the wire format is to classify every failure once, so that the
// worker can decide between retrying, waiting, failing and reconciling (see Class). A sending
// call whose outcome cannot be known (a 504, a timeout or a lost connection after the request
// was written) is reported as ClassUnknownOutcome: the message may have been delivered, and the
// provider has no idempotency key.
//
// Every request to the API can be paced and observed where it is made: Options.Pacer is waited
// for before each one (each page of a listing, each retry of a read; not a call whose context
// says WithoutPacing, nor the token endpoint's requests), and a Pacer that fails stops the call
// before anything is sent with a *PaceError; Options.Observer sees each request once, with the
// operation the client already knows (Exchange).
//
// What it must never do: the client never retries a sending call (only read-only GET calls are
// retried, a bounded number of times), never follows redirects (a redirected POST could be sent
// twice or turned into a GET), and never puts secrets or message text in an error message.
package provider
