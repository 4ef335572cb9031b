package ratelimit

import "strconv"

// keys builds every Redis key name of the limiter. All of them start with the
// hash tag "{prefix}:" so they share one Redis Cluster slot with each other
// (and with the ledger's keys), and every script receives all the keys it
// touches in KEYS.
//
// An account id may contain any character, so a key that has something after
// the account id spells the account's length first: "rcpt:3:a:b:c:x" cannot be
// read as another account's key.
type keys struct{ tag string }

func newKeys(prefix string) keys { return keys{tag: "{" + prefix + "}:rl:"} }

// slots is the zset of one account's slots: member "<send id>#<seq>", score
// the slot time (Unix ms). Past slots are trimmed after 24 h; future ones are
// the reservations still queued.
func (k keys) slots(account string) string { return k.tag + "slots:" + account }

// newChats is the zset of the account's chats_create slots (same members as
// in slots), for the tighter new-chat caps.
func (k keys) newChats(account string) string { return k.tag + "new:" + account }

// account is the hash of an account's counters: "seq" (member numbers) and
// "pen" (Penalize: no slot before this Unix ms).
func (k keys) account(account string) string { return k.tag + "acct:" + account }

// reservation is the string "<slot ms>:<seq>:<account>" of a send that holds a
// slot not yet consumed. Send ids are unique across accounts, so the key
// needs no account.
func (k keys) reservation(sendID string) string { return k.tag + "res:" + sendID }

// used is the string "<slot ms>:<seq>:<account>" of the slot a send consumed
// last, kept for UsedTTL so that Refund can give it back when a guard then
// refuses the send.
func (k keys) used(sendID string) string { return k.tag + "used:" + sendID }

// recipient holds the latest slot (Unix ms) of a send by account to one
// recipient, for the per-recipient cooldown; kind is "c" (chat id) or "a"
// (attendee id), so the two id spaces never mix.
func (k keys) recipient(account, kind, id string) string {
	return k.tag + "rcpt:" + strconv.Itoa(len(account)) + ":" + account + ":" + kind + ":" + id
}

// global is the cluster-wide GCRA state of the provider request rate: the
// theoretical arrival time of the next request (Unix µs).
func (k keys) global() string { return k.tag + "global" }
