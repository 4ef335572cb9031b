package adminapi

import (
	"context"
	"net/http"

	"github.com/sendworker/sendworker/inbound"
)

// InboundLog reads the log of processed provider events (package inbound): entries after the
// cursor (an entry id), oldest first, or the latest ones when the cursor is "".
type InboundLog interface {
	Events(ctx context.Context, after string, limit int) ([]inbound.LogEntry, error)
}

type eventsAnswer struct {
	Events     []inbound.LogEntry `json:"events"`
	NextCursor string             `json:"next_cursor"`
}

// GET /v1/provider/events?limit=&cursor=
func (a *api) inboundEvents(r *http.Request, _ *caller, _ []byte) (int, any, error) {
	if a.opts.Inbound == nil {
		return 0, nil, apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "inbound provider events are not configured"}
	}
	q := parseQuery(r, "limit", "cursor")
	limit, cursor := q.limit(1000), q.cursor()
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	if limit == 0 {
		limit = 50
	}
	evs, err := a.opts.Inbound.Events(r.Context(), cursor, limit)
	if err != nil {
		return 0, nil, err
	}
	if evs == nil {
		evs = []inbound.LogEntry{}
	}
	next := cursor
	if len(evs) > 0 {
		next = evs[len(evs)-1].ID
	}
	return http.StatusOK, eventsAnswer{Events: evs, NextCursor: next}, nil
}
