package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// Create stores a new pending_approval record (atomic: concurrent duplicates
// give one record). Same send_id and digest → (existing, false, nil); same
// send_id, other digest → *ConflictError. deadline is the effective approval
// deadline, already resolved by the caller. The request is stored as given
// (with its RequestedBy), each of its values once (storedRequest): every
// read gives it back whole.
func (l *Ledger) Create(ctx context.Context, req *tasks.SendRequest, digest string, deadline time.Time) (*tasks.Record, bool, error) {
	if req == nil || req.SendID == "" || strings.Contains(req.SendID, "\n") {
		return nil, false, errors.New("ledger: create: send_id is empty or malformed")
	}
	if req.AccountID == "" || strings.Contains(req.AccountID, "\n") {
		return nil, false, errors.New("ledger: create: account_id is empty or malformed")
	}
	if digest == "" || deadline.IsZero() {
		return nil, false, errors.New("ledger: create: digest and deadline are required")
	}
	var metadata string
	if len(req.Metadata) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, req.Metadata); err != nil {
			return nil, false, fmt.Errorf("ledger: create: metadata: %w", err)
		}
		metadata = buf.String()
	}
	body, err := storedRequest(req, metadata)
	if err != nil {
		return nil, false, fmt.Errorf("ledger: create: %w", err)
	}
	id := req.SendID
	args := []any{id, digest, body, metadata, req.AccountID, string(req.Operation), req.RequestedBy,
		deadline.UnixMilli(), req.ChatID}
	args = append(args, contactIndexArgs(req)...)
	now := l.nowMs()
	v, err := l.run(ctx, createScript, now, []string{l.keys.Send(id)}, args...)
	if err != nil {
		return nil, false, err
	}
	reply, err := stringList(v)
	if err != nil || len(reply) == 0 {
		return nil, false, fmt.Errorf("ledger: create: unexpected reply %v: %w", v, err)
	}
	switch reply[0] {
	case "created":
		// The record is what the script stored: decoded from the same fields, it is the
		// record a Get would return, without reading it back (the enqueue's costliest part).
		rec, err := createdRecord(req, string(body), metadata, digest, now, deadline.UnixMilli())
		return rec, true, err
	case "exists":
		rec, err := l.Get(ctx, id)
		return rec, false, err
	case "conflict":
		var existing string
		if len(reply) > 1 {
			existing = reply[1]
		}
		return nil, false, &ConflictError{SendID: id, ExistingDigest: existing}
	}
	return nil, false, refusal(reply[0], id, nil)
}

// createdRecord is the record createScript stores for req at now (ms): the
// fields it writes (body: storedRequest's), decoded as Get decodes them.
func createdRecord(req *tasks.SendRequest, body, metadata, digest string, now, deadline int64) (*tasks.Record, error) {
	ms := strconv.FormatInt(now, 10)
	h := map[string]string{fReq: body, fDigest: digest, fState: string(tasks.StatePendingApproval),
		fAccount: req.AccountID, fOp: string(req.Operation), fRequestedBy: req.RequestedBy,
		fCreatedMs: ms, fDeadlineMs: strconv.FormatInt(deadline, 10)}
	if metadata != "" {
		h[fMetadata] = metadata
	}
	if req.ChatID != "" {
		h[fChatID] = req.ChatID
	}
	st, err := decodeRecord(h)
	if err != nil {
		return nil, fmt.Errorf("ledger: create: %w", err)
	}
	if st.rec.History, err = decodeHistory(st.rec, nil); err != nil {
		return nil, fmt.Errorf("ledger: create: %w", err)
	}
	return st.rec, nil
}

// Get returns one record with its history, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, sendID string) (*tasks.Record, error) {
	rec, _, err := l.get(ctx, l.rdb.TxPipeline(), sendID, "") // record and history from the same moment
	return rec, err
}

// GetWithBreaker returns one record with its history, and whether the breaker
// of account is open (as BreakerOpen), read in the same round trip: the
// worker's first of an execution, with the account its task names. The
// caller checks that the record's account is that account before relying on
// the breaker's answer. Unlike Get, the reads are not one MULTI: a transition
// may land between the record's and the history's, and the worker takes
// nothing from the history but how often the send waited (its backoff); what
// it sends, BeginAttempt checks against the record as it is then.
func (l *Ledger) GetWithBreaker(ctx context.Context, sendID, account string) (*tasks.Record, bool, error) {
	return l.get(ctx, l.rdb.Pipeline(), sendID, account)
}

func (l *Ledger) get(ctx context.Context, pipe redis.Pipeliner, sendID, breakerAccount string) (*tasks.Record, bool, error) {
	hcmd := pipe.HGetAll(ctx, l.keys.Send(sendID))
	lcmd := pipe.LRange(ctx, l.keys.History(sendID), 0, -1)
	var bcmd *redis.StringCmd
	if breakerAccount != "" {
		bcmd = pipe.HGet(ctx, l.keys.Breaker(breakerAccount), "open")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("ledger: get %s: %w", sendID, err)
	}
	if err := hcmd.Err(); err != nil {
		return nil, false, fmt.Errorf("ledger: get %s: %w", sendID, err)
	}
	if len(hcmd.Val()) == 0 {
		return nil, false, fmt.Errorf("send %s: %w", sendID, ErrNotFound)
	}
	st, err := decodeRecord(hcmd.Val())
	if err != nil {
		return nil, false, fmt.Errorf("send %s: %w", sendID, err)
	}
	if st.rec.History, err = historyOf(hcmd.Val(), st.rec, lcmd.Val()); err != nil {
		return nil, false, fmt.Errorf("send %s: %w", sendID, err)
	}
	open := bcmd != nil && bcmd.Val() == "1"
	return st.rec, open, nil
}

// Query selects records for List. An empty State means every state.
type Query struct {
	State     tasks.State
	AccountID string
	Limit     int    // 1..1000, default 50
	Cursor    string // NextCursor of the previous page
	Oldest    bool   // default newest first
}

// Page is one page of List.
type Page struct {
	Records    []*tasks.Record
	NextCursor string // "" = last page
}

// List returns one page of records (without history) from the index zsets,
// scored by the records' seq: one ZRANGE BYSCORE LIMIT of the state's index
// (global or the account's; of every state's, pipelined and merged, when the
// query names no state) and one pipelined round of HGETALL, whatever the size
// of the indexes. A page may hold fewer than Limit records when some expired
// meanwhile; their index entries are dropped on the way. Records added while
// paging appear (oldest first) or not (newest first), but never twice, and no
// record is skipped.
func (l *Ledger) List(ctx context.Context, q Query) (Page, error) {
	if q.State != "" && !q.State.Valid() {
		return Page{}, fmt.Errorf("%w: unknown state %q", ErrBadQuery, q.State)
	}
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return Page{}, fmt.Errorf("%w: limit must be 1..1000", ErrBadQuery)
	}
	rng := redis.ZRangeArgs{ByScore: true, Count: int64(q.Limit) + 1}
	var after int64
	if q.Cursor != "" {
		seq, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		after = seq
	}
	switch {
	case q.Oldest && after > 0:
		rng.Start, rng.Stop = "("+strconv.FormatInt(after, 10), "+inf"
	case q.Oldest:
		rng.Start, rng.Stop = "-inf", "+inf"
	case after > 0:
		rng.Start, rng.Stop, rng.Rev = "("+strconv.FormatInt(after, 10), "-inf", true
	default:
		rng.Start, rng.Stop, rng.Rev = "+inf", "-inf", true
	}
	entries, err := l.indexPage(ctx, l.indexKeys(q.State, q.AccountID), rng)
	if err != nil {
		return Page{}, fmt.Errorf("ledger: list: %w", err)
	}
	var page Page
	if len(entries) > q.Limit {
		entries = entries[:q.Limit]
		page.NextCursor = encodeCursor(entries[len(entries)-1].seq)
	}
	if len(entries) == 0 {
		return page, nil
	}

	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(entries))
	for i, e := range entries {
		cmds[i] = pipe.HGetAll(ctx, l.keys.Send(e.id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Page{}, fmt.Errorf("ledger: list: %w", err)
	}
	dangling := map[string][]any{}
	page.Records = make([]*tasks.Record, 0, len(entries))
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 {
			dangling[entries[i].key] = append(dangling[entries[i].key], entries[i].id, entries[i].seq)
			continue
		}
		st, err := decodeRecord(h)
		if err != nil {
			return Page{}, fmt.Errorf("send %v: %w", entries[i].id, err)
		}
		page.Records = append(page.Records, st.rec)
	}
	for key, pairs := range dangling {
		if _, err := l.run(ctx, dropDanglingScript, l.nowMs(), []string{key}, pairs...); err != nil {
			return Page{}, err
		}
	}
	return page, nil
}

// indexEntry is one member of an index zset: a send and its seq.
type indexEntry struct {
	key string // the index it was read from
	id  string
	seq int64
}

// indexPage reads rng (its Key aside) from every index of keys and returns
// the first rng.Count entries in rng's order over all of them: one ZRANGE for
// one index, one pipelined round of them for several (every state's index, for
// a page of every state). Seqs are unique, so the merged order is exact.
func (l *Ledger) indexPage(ctx context.Context, keys []string, rng redis.ZRangeArgs) ([]indexEntry, error) {
	// One MULTI: the indexes as of one moment, so a send moving between two states
	// is on the page once or not at all, never twice (all keys share the hash tag).
	pipe := l.rdb.TxPipeline()
	cmds := make([]*redis.ZSliceCmd, len(keys))
	for i, key := range keys {
		r := rng
		r.Key = key
		cmds[i] = pipe.ZRangeArgsWithScores(ctx, r)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var out []indexEntry
	for i, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			out = append(out, indexEntry{key: keys[i], id: id, seq: int64(z.Score)})
		}
	}
	slices.SortFunc(out, func(a, b indexEntry) int {
		if rng.Rev {
			return cmp.Compare(b.seq, a.seq)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	if int64(len(out)) > rng.Count {
		out = out[:rng.Count]
	}
	return out, nil
}

// indexKeys are the indexes a query reads: its state's (global or the
// account's), or every state's when it names none.
func (l *Ledger) indexKeys(state tasks.State, account string) []string {
	states := []tasks.State{state}
	if state == "" {
		states = tasks.States
	}
	keys := make([]string, len(states))
	for i, s := range states {
		if account != "" {
			keys[i] = l.keys.Account(account, s)
		} else {
			keys[i] = l.keys.State(s)
		}
	}
	return keys
}

// Counts returns the number of records in each state (ZCARD of each state
// index; terminal states count records until Trim removes them).
func (l *Ledger) Counts(ctx context.Context) (map[tasks.State]int64, error) {
	pipe := l.rdb.Pipeline()
	cmds := make(map[tasks.State]*redis.IntCmd, len(tasks.States))
	for _, s := range tasks.States {
		cmds[s] = pipe.ZCard(ctx, l.keys.State(s))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: counts: %w", err)
	}
	out := make(map[tasks.State]int64, len(cmds))
	for s, c := range cmds {
		out[s] = c.Val()
	}
	return out, nil
}

// trimBatch bounds the work of one Trim script call.
const trimBatch = 1000

// Trim removes the index entries of records that finished more than
// Retention ago (and the records, if Redis has not expired them yet). Run it
// periodically (every minute is plenty); it returns how many it removed.
// Each script call handles at most 1000 records, so Trim never blocks Redis.
func (l *Ledger) Trim(ctx context.Context) (int, error) {
	now := l.nowMs()
	cutoff := now - l.opts.Retention.Milliseconds()
	total := 0
	for {
		v, err := l.run(ctx, trimScript, now, []string{l.keys.Finished()}, cutoff, trimBatch)
		if err != nil {
			return total, err
		}
		n, _ := v.(int64)
		total += int(n)
		if n < trimBatch {
			return total, nil
		}
	}
}
