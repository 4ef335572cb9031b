package ledger

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// The approval queue: pending sends, oldest approval deadline first, read
// from the deadline index (one zset of every pending send) in pages that
// cost the same at 100 or 100,000 pending sends. A queue cursor is the
// (deadline, send_id) of the last send a page looked at.

// QueueQuery selects a page of the approval queue.
type QueueQuery struct {
	// After is the Next of the previous page ("" = the start).
	After string
	// Limit is the most records returned: 1..500, default 50.
	Limit int
	// Keep filters the pending sends (account scope, metadata); nil keeps all.
	Keep func(*tasks.Record) bool
	// ScanMax bounds the sends looked at for one page when Keep drops many:
	// the page then holds fewer than Limit records and a Next. Default 2000.
	ScanMax int
}

// QueuePage is one page of the approval queue.
type QueuePage struct {
	Records []*tasks.Record
	// Next continues after the last send looked at; "" = the end of the queue.
	Next string
	// Scanned is how many pending sends the page looked at.
	Scanned int
}

// queueChunk is the sends one script call hands back.
const queueChunk = 200

// queueAfterScript returns up to ARGV[3] members of the deadline index with
// their scores, after (score ARGV[1], member ARGV[2]) in zset order (score,
// then member), in one atomic read: the cursor's rank is found and the
// range read in the same script, so no send moves between the two.
//
// KEYS, ARGV and reply: lua/queue_after.lua.
var queueAfterScript = script("queue_after")

// Queue returns a page of pending sends, oldest approval deadline first
// (ties by send_id). A send decided while paging simply leaves the queue; a
// new send appears on a later page if its deadline sorts after the cursor.
func (l *Ledger) Queue(ctx context.Context, q QueueQuery) (QueuePage, error) {
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 1 || q.Limit > 500 {
		return QueuePage{}, fmt.Errorf("%w: limit must be 1..500", ErrBadQuery)
	}
	if q.ScanMax <= 0 {
		q.ScanMax = 2000
	}
	score, member := "", ""
	if q.After != "" {
		ms, id, err := decodeQueueCursor(q.After)
		if err != nil {
			return QueuePage{}, err
		}
		score, member = strconv.FormatInt(ms, 10), id
	}
	var page QueuePage
	// The first chunk is the page (nothing filtered, one read does); each
	// further one doubles, up to queueChunk.
	chunk := q.Limit
	for ; ; chunk = min(2*chunk, queueChunk) {
		raw, err := l.lua.Run(ctx, queueAfterScript, []string{l.keys.Deadlines()}, score, member, chunk).StringSlice()
		if err != nil {
			return QueuePage{}, fmt.Errorf("ledger: queue: %w", err)
		}
		n := len(raw) / 2
		if n == 0 {
			page.Next = "" // the end
			return page, nil
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = raw[2*i]
		}
		recs, err := l.Records(ctx, ids)
		if err != nil {
			return QueuePage{}, err
		}
		done := false
		for i, rec := range recs {
			page.Scanned++
			score, member = raw[2*i+1], ids[i]
			if rec != nil && rec.State == tasks.StatePendingApproval && (q.Keep == nil || q.Keep(rec)) {
				page.Records = append(page.Records, rec)
			}
			if done = len(page.Records) == q.Limit || page.Scanned >= q.ScanMax; done {
				break
			}
		}
		ms, _ := strconv.ParseInt(score, 10, 64)
		page.Next = encodeQueueCursor(ms, member)
		if done {
			return page, nil
		}
		// The chunk is used up and the page not full: the next read says
		// whether the queue goes on (an empty read is its end).
	}
}

// QueueCursorOf is the cursor just at rec: a Queue page After it starts with
// the pending send that follows rec (the "next" of a send page).
func QueueCursorOf(rec *tasks.Record) string {
	return encodeQueueCursor(rec.ApprovalDeadline.UnixMilli(), rec.SendID)
}

// Records returns the records (without history) of ids in one pipelined
// round; a missing record is nil at its index.
func (l *Ledger) Records(ctx context.Context, ids []string) ([]*tasks.Record, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, l.keys.Send(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("ledger: records: %w", err)
		}
	}
	out := make([]*tasks.Record, len(ids))
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			continue
		}
		st, err := decodeRecord(c.Val())
		if err != nil {
			return nil, fmt.Errorf("send %s: %w", ids[i], err)
		}
		out[i] = st.rec
	}
	return out, nil
}

// PendingCount is the number of pending sends: of one account, or of all
// ("" account). One ZCARD.
func (l *Ledger) PendingCount(ctx context.Context, account string) (int64, error) {
	key := l.keys.Deadlines()
	if account != "" {
		key = l.keys.Account(account, tasks.StatePendingApproval)
	}
	n, err := l.rdb.ZCard(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: pending count: %w", err)
	}
	return n, nil
}

const queueCursorPrefix = "q1."

func encodeQueueCursor(ms int64, sendID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(queueCursorPrefix + strconv.FormatInt(ms, 10) + "." + sendID))
}

// decodeQueueCursor accepts exactly what encodeQueueCursor produces.
func decodeQueueCursor(c string) (int64, string, error) {
	if len(c) == 0 || len(c) > 400 {
		return 0, "", ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	rest, ok := strings.CutPrefix(string(raw), queueCursorPrefix)
	if !ok {
		return 0, "", ErrBadCursor
	}
	digits, id, ok := strings.Cut(rest, ".")
	ms, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || id == "" || encodeQueueCursor(ms, id) != c {
		return 0, "", ErrBadCursor
	}
	return ms, id, nil
}

// StateCount is the number of one account's sends in state s (one ZCARD).
func (l *Ledger) StateCount(ctx context.Context, account string, s tasks.State) (int64, error) {
	n, err := l.rdb.ZCard(ctx, l.keys.Account(account, s)).Result()
	if err != nil {
		return 0, fmt.Errorf("ledger: count: %w", err)
	}
	return n, nil
}
