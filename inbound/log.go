package inbound

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LogEntry is one processed event, as `sendctl events tail` shows it. It never holds message text.
type LogEntry struct {
	ID         string    `json:"id"`    // log entry id (the cursor)
	Entry      string    `json:"entry"` // the accepted-events stream entry it was
	Type       string    `json:"type"`
	Outcome    string    `json:"outcome"`
	Detail     string    `json:"detail,omitempty"`
	AccountID  string    `json:"account_id,omitempty"`
	ChatID     string    `json:"chat_id,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	Status     string    `json:"status,omitempty"`
	SendIDs    []string  `json:"send_ids,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	At         time.Time `json:"at"`
}

// ReadLog returns up to limit (1..1000) processed events of the log stream: those after the
// entry id after, oldest first, or the latest ones when after is "".
func ReadLog(ctx context.Context, rdb redis.UniversalClient, stream, after string, limit int) ([]LogEntry, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("inbound: limit %d: want 1..1000", limit)
	}
	var msgs []redis.XMessage
	var err error
	if after == "" {
		msgs, err = rdb.XRevRangeN(ctx, stream, "+", "-", int64(limit)).Result()
		slices.Reverse(msgs)
	} else {
		msgs, err = rdb.XRangeN(ctx, stream, "("+after, "+", int64(limit)).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("inbound: read log: %w", err)
	}
	out := make([]LogEntry, 0, len(msgs))
	for _, m := range msgs {
		s := func(k string) string { v, _ := m.Values[k].(string); return v }
		e := LogEntry{ID: m.ID, Entry: s("entry"), Type: s("type"), Outcome: s("outcome"), Detail: s("detail"),
			AccountID: s("account_id"), ChatID: s("chat_id"), MessageID: s("message_id"), Status: s("status")}
		if v := s("send_ids"); v != "" {
			e.SendIDs = strings.Split(v, ",")
		}
		if t, err := time.Parse(time.RFC3339Nano, s("at")); err == nil {
			e.At = t
		}
		if ms, err := strconv.ParseInt(s("received_ms"), 10, 64); err == nil {
			e.ReceivedAt = time.UnixMilli(ms).UTC()
		}
		out = append(out, e)
	}
	return out, nil
}
