// Package ratelimit paces the sends of every WhatsApp account across all
// replicas together, and the provider request rate of the whole cluster.
//
// Each send takes one slot on its account's timeline in one atomic Lua script
// (Reserve): the earliest time allowed by the account's minimum interval plus
// a random jitter, its hourly and daily caps (a warm-up ramp for young
// accounts), the tighter caps of new chats (chats_create), a per-recipient
// cooldown and any provider penalty (Penalize). The slot is taken before any
// waiting, so two workers can never both pass; a send whose slot is in the
// future is deferred to exactly that time through the ledger's outbox and
// comes back to consume it. A backlog of any size therefore costs one script
// call per send and one more when it comes back, each a bounded number of
// O(log n) commands, and touches only its own account's keys: it never delays
// other accounts, and waiting costs nothing.
//
// The worker calls Reserve right before BeginAttempt (ReserveSlot adds which
// limit decided, for the wait's detail), WaitGlobal before its sending call
// (every other provider request of the process, the account-age look-up of
// the warm-up included, waits for it in the provider client, as its Pacer),
// Penalize on a provider 429 (until its Retry-After), Cancel when
// a send holding a future slot will not go, and Refund when a guard refuses a
// send after it took its slot (nothing was sent: the slot, even a consumed
// one, is given back and does not count against the caps). Forecast answers the admin API's
// "why does this account wait, until when".
//
// What this package must never do: sleep or hold a worker for a per-account
// slot (Reserve only answers "now" or "at t"), read the Redis server's clock
// (the caller's clock is passed in, so tests and simulations control time),
// or store message content. Only WaitGlobal may block, for the short
// smoothing of the global provider request rate.
//
// # Semantics
//
//   - Every operation is a send: reactions, edits and deletes take slots and
//     count against the caps like messages do. Only chats_create counts
//     against the new-chat caps too.
//   - Windows are half-open, (t-1h, t] and (t-24h, t], over slot times: at
//     most HourlyCap slots in any hour, DailyCap in any 24 h, and slots at
//     least MinInterval apart. The jitter, uniform in [0, Jitter], is drawn
//     when the slot is taken and stays with it.
//   - A send holds at most one reservation. Asking again before its slot
//     returns the same slot; asking at or after it consumes it (go now). A
//     later Reserve of the same send (a new attempt after a failed one) takes
//     a new slot: every provider call that may deliver is paced.
//   - Late or penalized reservations are forfeited: a reservation consumed
//     more than LateGrace after its slot, or whose slot falls before a later
//     Penalize, gets a fresh slot at the end of the queue. Without this an
//     outage or a 429 would release every overdue send at once.
//   - Calls are spaced, not only slots: the account remembers when a slot was
//     last consumed (a call went out), and a reservation reached late — even
//     within LateGrace — is forfeited when consuming it now would put its call
//     within MinInterval of that one; fresh slots start MinInterval after it.
//     Two sends stalled past their slots (a busy machine, a slow release) then
//     go MinInterval apart instead of together. Refund puts the last call back
//     when the refunded slot was it (no call was made).
//   - Far future: a slot beyond Horizon (default 30 days) is not taken; the
//     send is told to come back at now+Horizon, holding nothing (one more
//     script call per Horizon waited).
//   - Two lanes on one timeline. A new chat takes the first valid time after
//     every slot of its account; any other send (a "reply") the first valid
//     time after the account's last reply, so it may land before new chats
//     queued for later: replies never wait behind the new-chat budget, while
//     new chats do wait behind a reply backlog (they share its caps). Each
//     lane only grows at its end, which keeps every check a fixed number of
//     O(log n) lookups, and is why a gap left by a canceled send in the middle
//     of a lane is not refilled.
//   - A canceled send leaves a gap unless the caller calls Cancel, which
//     frees a slot still in the future (never a past one: it may have been
//     used).
//   - Warm-up: with WarmupStart > 0 and the account's creation time known
//     (Options.AccountCreatedAt), the daily cap on day d (0 = first day) is
//     min(DailyCap, WarmupStart + d*WarmupStep), d taken at the slot's time.
//     If the lookup fails the account is treated as created now (the
//     tightest cap); a zero time means unknown: no warm-up.
//   - Recipient cooldown: no two slots of an account to one recipient within
//     RecipientCooldown. Recipients are chat ids (chats_messages_send) and
//     attendee ids (chats_create); reactions, edits and deletes name only a
//     message and have no recipient. A send in its recipient's cooldown holds
//     no slot (that would hold every later send of the account behind it): it
//     is told to come back when the cooldown ends.
//
// # Global request rate
//
// WaitGlobal is a GCRA kept in Redis, in its reserving form: one script call
// per provider request returns how long to wait, and the caller sleeps once.
// It holds across replicas exactly, needs no knowledge of how many replicas
// run, and costs one Redis call per provider request. In front of it, each
// process smooths its own calls with golang.org/x/time/rate at the same rate,
// so one process alone never asks Redis faster than GlobalRPS.
//
// # Keys
//
// Every key (keys.go) starts with the hash tag {prefix} and every script
// (scripts.go) names all its keys in KEYS, so all of it is Redis Cluster safe.
// Keys expire on their own a day and an hour after the account's last slot
// (the slots zset and the account hash up to an hour later: Reserve sets
// their lives an hour ahead, so that its usual call sets none). Those lives
// are reckoned on the time of the call that sets them: the replicas' clocks
// must agree within that hour (the daemon's limiter runs on Redis's clock,
// which makes them one), or a key could expire before a slower replica stops
// counting its newest slot.
// Slots more than a day old count for nothing: every read of the scripts
// ignores them, and Reserve removes them once the day's floor has moved an
// hour past its last removal, so that its usual call removes nothing
// (TestOldSlotsIgnoredUntilTrimmed). TestReserveCommandBudget counts the
// commands of each kind of Reserve call: a budget a change cannot exceed
// unnoticed.
package ratelimit
