package ledger

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditEntry is one decision of the audit stream: who did what, to which send or account,
// when. Fields a later version adds to the stream are kept in Other.
type AuditEntry struct {
	// ID is the stream entry id ("<ms>-<seq>"): unique, increasing, the cursor of a listing.
	ID        string            `json:"id"`
	Event     string            `json:"event"` // enqueued, approved, rejected, canceled, expired, paused, resumed, optout_added...
	At        time.Time         `json:"at"`
	By        string            `json:"by,omitempty"`
	SendID    string            `json:"send_id,omitempty"`
	AccountID string            `json:"account_id,omitempty"`
	Digest    string            `json:"digest,omitempty"`
	Note      string            `json:"note,omitempty"`
	Scope     string            `json:"scope,omitempty"`
	ContactID string            `json:"contact_id,omitempty"`
	Other     map[string]string `json:"other,omitempty"`
}

// AuditQuery filters a listing of the audit stream. Zero fields do not filter.
type AuditQuery struct {
	Actor     string    // entries by this identity ("system" for expiries)
	SendID    string    // entries about this send
	AccountID string    // entries about this account (a send of it, or a pause of it)
	From, To  time.Time // entries at or after From, at or before To
	// Cursor is the NextCursor of the previous page: the listing goes on after it.
	Cursor string
	// Limit is the most entries returned (default 100, at most 1000).
	Limit int
}

// Bounds of an audit listing.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	// auditScanMax bounds the stream entries one call reads (filtered out or not), so a
	// narrow filter over a long stream answers in bounded time; the cursor goes on from there.
	auditScanMax = 10_000
	auditBatch   = 500
)

var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// Audit lists the audit stream, oldest first, filtered by q. next is the cursor of the next
// page ("" once the stream's end was reached). A page may hold fewer than Limit entries (even
// none) while next is not "": the call stopped after reading auditScanMax entries.
func (l *Ledger) Audit(ctx context.Context, q AuditQuery) (entries []AuditEntry, next string, err error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultAuditLimit
	case limit < 0 || limit > MaxAuditLimit:
		return nil, "", fmt.Errorf("%w: limit must be 1..%d", ErrBadQuery, MaxAuditLimit)
	}
	// The stream ids carry Redis's clock, "at" the ledger's (which tests and simulations set):
	// times are judged on "at", so the scan is not bounded by ids.
	start := "-"
	if q.Cursor != "" {
		if !streamIDPattern.MatchString(q.Cursor) {
			return nil, "", ErrBadCursor
		}
		start = "(" + q.Cursor
	}
	const end = "+"
	entries = []AuditEntry{}
	scanned := 0
	for scanned < auditScanMax {
		msgs, err := l.rdb.XRangeN(ctx, l.keys.Audit(), start, end, auditBatch).Result()
		if err != nil {
			return nil, "", fmt.Errorf("ledger: audit: %w", err)
		}
		for _, m := range msgs {
			scanned++
			e := auditEntry(m)
			if q.matches(e) {
				entries = append(entries, e)
				if len(entries) == limit {
					return entries, m.ID, nil
				}
			}
			start = "(" + m.ID
			next = m.ID
		}
		if len(msgs) < auditBatch {
			return entries, "", nil // the end of the stream (or of the range)
		}
	}
	return entries, next, nil
}

func (q AuditQuery) matches(e AuditEntry) bool {
	return (q.From.IsZero() || !e.At.Before(q.From)) && (q.To.IsZero() || !e.At.After(q.To)) &&
		(q.Actor == "" || e.By == q.Actor) &&
		(q.SendID == "" || e.SendID == q.SendID) &&
		(q.AccountID == "" || e.AccountID == q.AccountID)
}

func auditEntry(m redis.XMessage) AuditEntry {
	e := AuditEntry{ID: m.ID}
	for k, v := range m.Values {
		s, _ := v.(string)
		switch k {
		case "event":
			e.Event = s
		case "at":
			e.At, _ = time.Parse(time.RFC3339Nano, s)
		case "by":
			e.By = s
		case "send_id":
			e.SendID = s
		case "account_id":
			e.AccountID = s
		case "digest":
			e.Digest = s
		case "note":
			e.Note = s
		case "scope":
			e.Scope = s
		case "contact_id":
			e.ContactID = s
		default:
			if e.Other == nil {
				e.Other = map[string]string{}
			}
			e.Other[k] = s
		}
	}
	if e.At.IsZero() {
		// The id's milliseconds are the time Redis appended it.
		msPart, _, _ := strings.Cut(m.ID, "-")
		if ms, err := strconv.ParseInt(msPart, 10, 64); err == nil {
			e.At = time.UnixMilli(ms).UTC()
		}
	}
	return e
}
