// Package cli is sendctl, the command-line client of the sendworker admin
// HTTP API (docs/CONTRACTS.md, "Admin HTTP API wire contract"). Run is the
// whole program; cmd/sendctl only wires it to the process (arguments,
// standard streams, environment, signals) so tests can drive it in-process.
//
// sendctl only calls the admin API: it never talks to Redis or the provider
// directly, and it never prints the API token, not even in errors.
//
// Exit codes, which scripts can rely on:
//
//	0  success
//	1  usage error: bad flags or arguments, unreadable input file
//	2  the API said the request is invalid (HTTP 400, 413, 415); field errors
//	   are printed one per line as "field: message"
//	3  not found (HTTP 404)
//	4  conflict or refusal (HTTP 409: conflict, digest_mismatch, not_pending,
//	   too_late, final; and HTTP 403 self_approval)
//	5  unauthorized or forbidden (HTTP 401, 403)
//	6  server or network error (HTTP 5xx or another unexpected status,
//	   server unreachable, timeout, interrupted, malformed answer)
//	7  bulk command: at least one item failed (each item's outcome is printed)
package cli
