package wasim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	defaultLimit = 100
	maxLimit     = 250
)

// listQuery is the paging part of a list request, shared by chats_list and chats_messages_list.
type listQuery struct {
	limit  int
	cursor *position // nil: first page
	before time.Time // zero: no bound; items strictly older
	after  time.Time // zero: no bound; items strictly newer
}

// position is where a page ended, in the list's newest-first order. Keyset rather than offset
// paging, so that messages arriving between two pages neither repeat nor skip items.
type position struct {
	at  time.Time
	seq int64
}

// parseListQuery validates limit, cursor, before and after. Each may appear at most once.
func parseListQuery(q url.Values) (listQuery, error) {
	out := listQuery{limit: defaultLimit}
	var errs []error
	one := func(name string) (string, bool) {
		vs, ok := q[name]
		if !ok {
			return "", false
		}
		if len(vs) != 1 {
			errs = append(errs, fmt.Errorf("%s: given %d times", name, len(vs)))
			return "", false
		}
		return vs[0], true
	}
	if v, ok := one("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			errs = append(errs, fmt.Errorf("limit: want an integer from 1 to %d, got %q", maxLimit, v))
		} else {
			out.limit = n
		}
	}
	if v, ok := one("cursor"); ok {
		p, err := decodeCursor(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("cursor: %w", err))
		} else {
			out.cursor = &p
		}
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"before", &out.before}, {"after", &out.after}} {
		if v, ok := one(b.name); ok {
			t, err := parseStamp(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", b.name, err))
			} else {
				*b.dst = t
			}
		}
	}
	return out, errors.Join(errs...)
}

// keep reports whether an item stamped at passes the before/after bounds.
func (q listQuery) keep(at time.Time) bool {
	if !q.before.IsZero() && !at.Before(q.before) {
		return false
	}
	if !q.after.IsZero() && !at.After(q.after) {
		return false
	}
	return true
}

func encodeCursor(p position) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "v1.%d.%d", p.at.UnixMilli(), p.seq))
}

func decodeCursor(v string) (position, error) {
	bad := errors.New("not a cursor returned by this server")
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return position{}, bad
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return position{}, bad
	}
	ms, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || ms < 0 || seq < 0 {
		return position{}, bad
	}
	return position{at: time.UnixMilli(ms).UTC(), seq: seq}, nil
}

// keyed is a list item with its sort key.
type keyed[T any] struct {
	item T
	pos  position
}

// older reports whether a comes after b in newest-first order.
func (a position) older(b position) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

// page cuts one page from items, which are sorted newest first, and returns the cursor of the
// next page, or nil on the last one.
func page[T any](items []keyed[T], q listQuery) ([]T, *string) {
	out := make([]T, 0, min(q.limit, len(items)))
	var last position
	for _, it := range items {
		if q.cursor != nil && !it.pos.older(*q.cursor) {
			continue
		}
		if len(out) == q.limit {
			next := encodeCursor(last)
			return out, &next
		}
		out = append(out, it.item)
		last = it.pos
	}
	return out, nil
}
