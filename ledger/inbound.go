package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// Inbound provider events (package inbound) end sends and change the opt-out
// list through the scripts of this file, so a reply or an opt-out ends every
// send it concerns in one atomic step, through the same terminal transition
// (finish: record, indexes, history, results stream) as a skip at dispatch.
//
// The contact index (Keys.Contact) is what lets them find those sends without
// a scan: Create adds every send to the zset of each contact id it addresses
// (its chat_id, its attendees_ids), scored by its stop_if_replied_since, in the
// create script itself. Entries of final sends are removed lazily, when an
// inbound script meets them; each zset expires Retention after its last
// insertion. A send created before the index existed is not in it: the
// worker's checks at dispatch (replied, opt-out in BeginAttempt) still stop it.

// InboundDedupeTTL is how long an inbound event's dedupe key is kept: longer
// than any provider retry schedule.
const InboundDedupeTTL = 48 * time.Hour

// InboundBy is the "by" of history and audit entries written for a provider event.
const InboundBy = "provider"

// Event types of the results stream written by the inbound scripts (the
// breaker's are in package results too).
const (
	EventContactReplied  = "contact_replied"
	EventContactOptedOut = "contact_opted_out"
)

// contactIndexArgs are the create script's contact index arguments: the
// stop_if_replied_since score (-1: none), then the contact ids of the send.
func contactIndexArgs(req *tasks.SendRequest) []any {
	score := int64(-1)
	if req.StopIfRepliedSince != nil {
		score = max(req.StopIfRepliedSince.UnixMilli(), 0)
	}
	args := []any{score}
	for _, c := range sendContacts(req) {
		args = append(args, c)
	}
	return args
}

// sendContacts are the contact ids a send is indexed under, normalized (tasks.NormalizeID).
func sendContacts(req *tasks.SendRequest) []string {
	var out []string
	for _, c := range append([]string{req.ChatID}, req.AttendeeIDs...) {
		c = tasks.NormalizeID(c) // the inbound side looks up normalized ids
		if c != "" && !strings.Contains(c, "\n") && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// replyScript ends, skipped/contact_replied, every send of the account
// addressed to one of the contact ids that is pending_approval, approved or
// waiting and whose stop_if_replied_since is before the reply, and appends
// the contact_replied event entry for the reply itself.
//
// KEYS, ARGV and reply: lua/reply.lua.
var replyScript = script("reply")

// optOutPutScript puts a contact on the opt-out list with its details and
// ends, skipped/opted_out, every send addressed to it (or to the other
// contact ids given, e.g. the chat where it wrote) that is pending_approval,
// approved or waiting, whatever its account; then announces it (event entry
// contact_opted_out) when anything changed.
//
// KEYS, ARGV and reply: lua/opt_out_put.lua.
var optOutPutScript = script("opt_out_put")

// optOutDelScript takes a contact off the opt-out list with its details.
//
// KEYS, ARGV and reply: lua/opt_out_del.lua.
var optOutDelScript = script("opt_out_del")

// receiptScript writes a delivery status reported by the provider (delivered,
// read, reaction, edited, deleted) on the send whose message it concerns:
// record fields, a history event (state unchanged) and an event entry
// message_<kind> in the results stream.
//
// KEYS, ARGV and reply: lua/receipt.lua.
var receiptScript = script("receipt")

// ReplyEvent is a message a contact wrote, as an inbound provider event.
type ReplyEvent struct {
	// Key dedupes the event: an event whose key was seen within
	// InboundDedupeTTL changes nothing ("" = no dedupe).
	Key       string
	AccountID string
	ChatID    string
	MessageID string
	SenderID  string
	At        time.Time
	// ContactIDs are the index keys to look in: the chat id and the
	// sender's ids (see Keys.Contact).
	ContactIDs []string
}

// InboundOutcome is what an inbound script did.
type InboundOutcome struct {
	Duplicate bool     // the event was processed before: nothing changed
	Matched   bool     // receipts: a send of ours has the message
	Added     bool     // opt-outs: the contact was not on the list
	SendIDs   []string // sends ended (reply, opt-out) or updated (receipt)
}

// ContactReplied ends, skipped/contact_replied, every send of ev.AccountID
// addressed to one of ev.ContactIDs that is pending_approval, approved or
// waiting with a stop_if_replied_since before ev.At, and appends one
// contact_replied event entry to the results stream (every send ended also
// gets its own result), all in one script.
func (l *Ledger) ContactReplied(ctx context.Context, ev ReplyEvent) (InboundOutcome, error) {
	if ev.AccountID == "" || len(ev.ContactIDs) == 0 || ev.At.IsZero() {
		return InboundOutcome{}, errors.New("ledger: contact replied: account, contact ids and time are required")
	}
	args := []any{ev.Key, InboundDedupeTTL.Milliseconds(), ev.AccountID, ev.At.UnixMilli(), isoMs(ev.At.UnixMilli()),
		ev.ChatID, ev.MessageID, ev.SenderID}
	for _, c := range ev.ContactIDs {
		args = append(args, c)
	}
	v, err := l.run(ctx, replyScript, l.nowMs(), []string{l.opts.ResultsStream}, args...)
	if err != nil {
		return InboundOutcome{}, err
	}
	return inboundOutcome(v)
}

// OptOutEntry is one contact on the opt-out list with why, from where and when.
type OptOutEntry struct {
	ContactID string    `json:"contact_id"`
	Reason    string    `json:"reason,omitempty"`  // e.g. keyword, request, complaint
	Source    string    `json:"source,omitempty"`  // e.g. "api", "provider message <id> in chat <id>"
	Keyword   string    `json:"keyword,omitempty"` // the opt-out keyword matched, if any
	By        string    `json:"by,omitempty"`
	At        time.Time `json:"at"`
}

// OptOutRequest puts a contact on the opt-out list (PutOptOut).
type OptOutRequest struct {
	Entry OptOutEntry
	// Key dedupes an inbound event ("" = none).
	Key string
	// AccountID and ChatID say where the contact opted out (announced).
	AccountID, ChatID string
	// OtherContactIDs: the sends addressed to these ids are ended too (the
	// chat where the contact wrote, its other ids).
	OtherContactIDs []string
}

// PutOptOut adds the contact to the opt-out list with its details (kept from
// the first time it was added), ends, skipped/opted_out, every send addressed
// to it or to OtherContactIDs that is pending_approval, approved or waiting
// (any account: an opt-out is the person's), and announces it with a
// contact_opted_out event entry when anything changed; one script. Sends
// already sending are not recalled; later ones are refused by BeginAttempt.
func (l *Ledger) PutOptOut(ctx context.Context, r OptOutRequest) (InboundOutcome, error) {
	e := r.Entry
	contact, form, err := optOutContact(e.ContactID)
	if err != nil {
		return InboundOutcome{}, err
	}
	e.ContactID = contact
	if e.At.IsZero() {
		e.At = l.opts.Now()
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	info, err := json.Marshal(e)
	if err != nil {
		return InboundOutcome{}, fmt.Errorf("ledger: opt-out: %w", err)
	}
	args := []any{r.Key, InboundDedupeTTL.Milliseconds(), e.ContactID, string(info), e.By, e.Reason, e.Source,
		e.Keyword, r.AccountID, r.ChatID, form}
	for _, c := range r.OtherContactIDs {
		if c != "" && c != e.ContactID {
			args = append(args, c)
		}
	}
	v, err := l.run(ctx, optOutPutScript, l.nowMs(), []string{l.opts.ResultsStream}, args...)
	if err != nil {
		return InboundOutcome{}, err
	}
	items, err := stringList(v)
	if err != nil {
		return InboundOutcome{}, err
	}
	if len(items) == 0 || items[0] == "duplicate" {
		return InboundOutcome{Duplicate: true}, nil
	}
	if len(items) < 2 {
		return InboundOutcome{}, fmt.Errorf("ledger: opt-out: unexpected reply %q", items)
	}
	return InboundOutcome{Added: items[1] == "1", SendIDs: items[2:]}, nil
}

// DeleteOptOut takes a contact off the opt-out list and drops its details;
// audited (with the reason) when it was there. It reports whether it was.
func (l *Ledger) DeleteOptOut(ctx context.Context, contactID, by, reason string) (bool, error) {
	contactID, form, err := optOutContact(contactID)
	if err != nil {
		return false, err
	}
	n, err := l.run(ctx, optOutDelScript, l.nowMs(), []string{l.keys.OptOut()}, contactID, by, reason, form)
	if err != nil {
		return false, err
	}
	removed, _ := n.(int64)
	return removed == 1, nil
}

// OptOutEntries lists the opt-out list with the details of each entry,
// sorted by contact id. Entries added before details existed (or by
// AddOptOut) have only their contact id.
func (l *Ledger) OptOutEntries(ctx context.Context) ([]OptOutEntry, error) {
	pipe := l.rdb.Pipeline()
	ids := pipe.SMembers(ctx, l.keys.OptOut())
	infos := pipe.HGetAll(ctx, l.keys.OptOutInfo())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: opt-outs: %w", err)
	}
	out := make([]OptOutEntry, 0, len(ids.Val()))
	for _, id := range ids.Val() {
		if strings.HasPrefix(id, unlinkedMarkerPrefix) {
			continue // a marker of unlinked opt-outs (UnlinkedMarker), not an entry
		}
		e := OptOutEntry{ContactID: id}
		if raw, ok := infos.Val()[id]; ok {
			_ = json.Unmarshal([]byte(raw), &e) // details are best effort; the id is the entry
			e.ContactID = id
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b OptOutEntry) int { return strings.Compare(a.ContactID, b.ContactID) })
	return out, nil
}

// Receipt is a delivery status the provider reported on a message.
type Receipt struct {
	Key       string // dedupe ("" none)
	MessageID string
	Kind      string // delivered, read, reaction, edited, deleted
	Value     string // the reaction
	At        time.Time
}

// receiptEvents is the results stream event of each receipt kind: package
// results names them, the receipt script writes the one given.
var receiptEvents = map[string]string{
	"delivered": results.EventMessageDelivered,
	"read":      results.EventMessageRead,
	"reaction":  results.EventMessageReaction,
	"edited":    results.EventMessageEdited,
	"deleted":   results.EventMessageDeleted,
}

// RecordReceipt writes a receipt on the send whose message it concerns (the
// message index of End(sent)): record fields <kind>_ms (and reaction), a
// history event with the state unchanged, and an event entry message_<kind>
// in the results stream. A message that is not ours: Matched false, nothing written.
func (l *Ledger) RecordReceipt(ctx context.Context, r Receipt) (InboundOutcome, error) {
	event, ok := receiptEvents[r.Kind]
	if !ok {
		return InboundOutcome{}, fmt.Errorf("ledger: receipt: unknown kind %q", r.Kind)
	}
	if r.MessageID == "" || r.At.IsZero() {
		return InboundOutcome{}, errors.New("ledger: receipt: message id and time are required")
	}
	ms := r.At.UnixMilli()
	v, err := l.run(ctx, receiptScript, l.nowMs(), []string{l.opts.ResultsStream},
		r.Key, InboundDedupeTTL.Milliseconds(), r.MessageID, r.Kind, r.Value, isoMs(ms), ms, event)
	if err != nil {
		return InboundOutcome{}, err
	}
	items, err := stringList(v)
	if err != nil {
		return InboundOutcome{}, err
	}
	switch {
	case len(items) == 0 || items[0] == "duplicate":
		return InboundOutcome{Duplicate: true}, nil
	case items[0] == "no_match":
		return InboundOutcome{}, nil
	}
	return InboundOutcome{Matched: true, SendIDs: items[1:]}, nil
}

// InboundSeen reports whether an inbound event's dedupe key was marked.
func (l *Ledger) InboundSeen(ctx context.Context, key string) (bool, error) {
	n, err := l.rdb.Exists(ctx, l.keys.InboundSeen(key)).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: inbound seen: %w", err)
	}
	return n == 1, nil
}

// MarkInboundSeen marks an inbound event's dedupe key for events whose effect
// is not a ledger script (account status: the breaker's own scripts, which are
// idempotent). It reports whether this call marked it.
func (l *Ledger) MarkInboundSeen(ctx context.Context, key string) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.keys.InboundSeen(key), "1", InboundDedupeTTL).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("ledger: inbound seen: %w", err)
	}
	return ok, nil
}

func inboundOutcome(v any) (InboundOutcome, error) {
	items, err := stringList(v)
	if err != nil {
		return InboundOutcome{}, err
	}
	if len(items) == 0 || items[0] == "duplicate" {
		return InboundOutcome{Duplicate: true}, nil
	}
	return InboundOutcome{SendIDs: items[1:]}, nil
}
