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

// luaInboundSeen marks an inbound event's dedupe key; ARGV[7] key ("" none),
// ARGV[8] TTL ms. seen() is true when the event was processed before.
const luaInboundSeen = `
local function seen()
  if ARGV[7] == '' then return false end
  return redis.call('SET', P .. 'inbound:seen:' .. ARGV[7], '1', 'NX', 'PX', ARGV[8]) == false
end
`

// replyScript ends, skipped/contact_replied, every send of the account
// addressed to one of the contact ids that is pending_approval, approved or
// waiting and whose stop_if_replied_since is before the reply, and appends
// the contact_replied event entry for the reply itself.
//
//	KEYS[1] results stream
//	ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] account  ARGV[10] reply ms  ARGV[11] reply (RFC 3339)
//	ARGV[12] chat id  ARGV[13] message id  ARGV[14] sender id  ARGV[15..] contact ids
//
// Reply: {"duplicate"} | {"ok", skipped send ids...}.
var replyScript = script(luaInboundSeen + `
if seen() then return {'duplicate'} end
local acct = ARGV[9]
local skipped = {}
for i = 15, #ARGV do
  local ck = k_contact(ARGV[i])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', ck, 0, '(' .. ARGV[10])) do
    local rk = k_send(id)
    local r = hmget(rk, FINISH_FIELDS)
    local st = get(r, 'state')
    if st == '' or is_terminal(st) then
      redis.call('ZREM', ck, id)
    elseif get(r, 'account') == acct and (st == 'pending_approval' or st == 'approved' or st == 'waiting') then
      finish(id, r, 'skipped', 'contact_replied', 'the contact wrote at ' .. ARGV[11] .. ' (provider event)', {}, 'provider')
      audit('skipped', {'send_id', id, 'by', 'provider', 'account_id', acct, 'note', 'contact_replied'})
      redis.call('ZREM', ck, id)
      skipped[#skipped + 1] = id
    end
  end
end
redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', 'event', 'contact_replied', 'account_id', acct,
  'chat_id', ARGV[12], 'message_id', ARGV[13], 'contact_id', ARGV[14], 'at', ARGV[11],
  'send_ids', table.concat(skipped, ','))
local out = {'ok'}
for _, id in ipairs(skipped) do out[#out + 1] = id end
return out
`)

// optOutPutScript puts a contact on the opt-out list with its details and
// ends, skipped/opted_out, every send addressed to it (or to the other
// contact ids given, e.g. the chat where it wrote) that is pending_approval,
// approved or waiting, whatever its account; then announces it (event entry
// contact_opted_out) when anything changed.
//
//	KEYS[1] results stream
//	ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] contact  ARGV[10] info JSON  ARGV[11] by  ARGV[12] reason
//	ARGV[13] source  ARGV[14] keyword  ARGV[15] account ("" none)  ARGV[16] chat id
//	ARGV[17] the contact's id form ("phone", "lid" or "")  ARGV[18..] more contact ids
//
// Reply: {"duplicate"} | {"ok", "1" added / "0" already there, skipped send ids...}.
var optOutPutScript = script(luaInboundSeen + `
if seen() then return {'duplicate'} end
local contact, by = ARGV[9], ARGV[11]
local added, linked = optout_put(k_optout(), contact, ARGV[17])
if added == 1 then
  redis.call('HSET', k_optout_info(), contact, ARGV[10])
  local fields = {'contact_id', contact, 'by', by, 'reason', ARGV[12], 'source', ARGV[13], 'keyword', ARGV[14]}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit('optout_added', fields)
end
local skipped = {}
local contacts = {contact}
if linked then contacts[#contacts + 1] = linked end
for i = 18, #ARGV do contacts[#contacts + 1] = ARGV[i] end
for _, c in ipairs(contacts) do
  local ck = k_contact(c)
  for _, id in ipairs(redis.call('ZRANGE', ck, 0, -1)) do
    local rk = k_send(id)
    local r = hmget(rk, FINISH_FIELDS)
    local st = get(r, 'state')
    if st == '' or is_terminal(st) then
      redis.call('ZREM', ck, id)
    elseif st == 'pending_approval' or st == 'approved' or st == 'waiting' then
      finish(id, r, 'skipped', 'opted_out', 'the contact opted out (' .. ARGV[13] .. ')', {}, by)
      audit('skipped', {'send_id', id, 'by', by, 'account_id', get(r, 'account'), 'note', 'opted_out'})
      redis.call('ZREM', ck, id)
      skipped[#skipped + 1] = id
    end
  end
end
if added == 1 or #skipped > 0 then
  redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', 'event', 'contact_opted_out',
    'account_id', ARGV[15], 'chat_id', ARGV[16], 'contact_id', contact, 'status', ARGV[14], 'at', NOW_ISO,
    'detail', ARGV[13], 'send_ids', table.concat(skipped, ','))
end
local out = {'ok', tostring(added)}
for _, id in ipairs(skipped) do out[#out + 1] = id end
return out
`)

// optOutDelScript takes a contact off the opt-out list with its details.
//
//	ARGV[7] contact  ARGV[8] by  ARGV[9] reason  ARGV[10] the contact's id form ("phone", "lid" or "")
//
// Reply: 1 if the list changed.
var optOutDelScript = script(`
local contact, by = ARGV[7], ARGV[8]
local removed, linked = optout_del(k_optout(), contact, ARGV[10])
redis.call('HDEL', k_optout_info(), contact)
if linked then redis.call('HDEL', k_optout_info(), linked) end
if removed == 1 then
  local fields = {'contact_id', contact, 'by', by, 'reason', ARGV[9]}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit('optout_removed', fields)
end
return removed
`)

// receiptScript writes a delivery status reported by the provider (delivered,
// read, reaction, edited, deleted) on the send whose message it concerns:
// record fields, a history event (state unchanged) and an event entry
// message_<kind> in the results stream.
//
//	KEYS[1] results stream
//	ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] message id  ARGV[10] kind  ARGV[11] value (a reaction)
//	ARGV[12] at (RFC 3339)  ARGV[13] at ms
//
// Reply: {"duplicate"} | {"no_match"} | {"ok", send id}.
var receiptScript = script(luaInboundSeen + `
if seen() then return {'duplicate'} end
local id = redis.call('GET', k_msg(ARGV[9]))
if not id then return {'no_match'} end
local rk = k_send(id)
local r = hmget(rk, {'state', 'account', 'chat_id', 'attempts'})
if missing(rk, r) then return {'no_match'} end
local kind, value = ARGV[10], ARGV[11]
local kv = {kind .. '_ms', ARGV[13], 'updated_ms', NOW_S}
if kind == 'reaction' then kv[#kv + 1] = 'reaction'; kv[#kv + 1] = value end
hset(rk, r, kv)
local detail = 'provider: message ' .. kind .. ' at ' .. ARGV[12]
if value ~= '' then detail = detail .. ' (' .. value .. ')' end
event(id, get(r, 'state'), '', 'provider', 0, detail)
redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', 'event', 'message_' .. kind,
  'account_id', get(r, 'account'), 'send_id', id, 'chat_id', get(r, 'chat_id'), 'message_id', ARGV[9],
  'status', value, 'at', ARGV[12])
return {'ok', id}
`)

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

// RecordReceipt writes a receipt on the send whose message it concerns (the
// message index of End(sent)): record fields <kind>_ms (and reaction), a
// history event with the state unchanged, and an event entry message_<kind>
// in the results stream. A message that is not ours: Matched false, nothing written.
func (l *Ledger) RecordReceipt(ctx context.Context, r Receipt) (InboundOutcome, error) {
	switch r.Kind {
	case "delivered", "read", "reaction", "edited", "deleted":
	default:
		return InboundOutcome{}, fmt.Errorf("ledger: receipt: unknown kind %q", r.Kind)
	}
	if r.MessageID == "" || r.At.IsZero() {
		return InboundOutcome{}, errors.New("ledger: receipt: message id and time are required")
	}
	ms := r.At.UnixMilli()
	v, err := l.run(ctx, receiptScript, l.nowMs(), []string{l.opts.ResultsStream},
		r.Key, InboundDedupeTTL.Milliseconds(), r.MessageID, r.Kind, r.Value, isoMs(ms), ms)
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
	n, err := l.rdb.Exists(ctx, l.keys.tag+"inbound:seen:"+key).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: inbound seen: %w", err)
	}
	return n == 1, nil
}

// MarkInboundSeen marks an inbound event's dedupe key for events whose effect
// is not a ledger script (account status: the breaker's own scripts, which are
// idempotent). It reports whether this call marked it.
func (l *Ledger) MarkInboundSeen(ctx context.Context, key string) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.keys.tag+"inbound:seen:"+key, "1", InboundDedupeTTL).Result()
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
