package wasim

import (
	"net/url"
	"testing"
	"time"
)

func TestParseListQuery(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)
	cursor := encodeCursor(position{at: at, seq: 42})
	tests := []struct {
		query   string
		want    listQuery
		wantErr bool
	}{
		{"", listQuery{limit: 100}, false},
		{"limit=1", listQuery{limit: 1}, false},
		{"limit=250", listQuery{limit: 250}, false},
		{"cursor=" + cursor, listQuery{limit: 100, cursor: &position{at: at, seq: 42}}, false},
		{"before=2026-11-24T10:00:00.123Z&after=2026-11-24T10:00:00.123Z", listQuery{limit: 100, before: at, after: at}, false},
		{"unrelated=1", listQuery{limit: 100}, false},
		{"limit=0", listQuery{}, true},
		{"limit=-1", listQuery{}, true},
		{"limit=251", listQuery{}, true},
		{"limit=%201", listQuery{}, true},
		{"limit=1&limit=1", listQuery{}, true},
		{"cursor=", listQuery{}, true},
		{"cursor=" + cursor + "&cursor=" + cursor, listQuery{}, true},
		{"before=2026-11-24T10:00:00.12Z", listQuery{}, true},
		{"before=2026-11-24T10:00:00.123+00:00", listQuery{}, true},
		{"after=2026-11-24 10:00:00.123Z", listQuery{}, true},
		{"after=2026-13-24T10:00:00.123Z", listQuery{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseListQuery(q)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseListQuery accepted %q: %+v", tt.query, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseListQuery: %v", err)
			}
			if got.limit != tt.want.limit || !got.before.Equal(tt.want.before) || !got.after.Equal(tt.want.after) ||
				(got.cursor == nil) != (tt.want.cursor == nil) || (got.cursor != nil && (!got.cursor.at.Equal(tt.want.cursor.at) || got.cursor.seq != tt.want.cursor.seq)) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPage(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var list []keyed[int]
	// Newest first; items 2 and 3 share a millisecond.
	for i, ms := range []int{9, 8, 7, 7, 5, 4} {
		list = append(list, keyed[int]{item: i, pos: position{at: base.Add(time.Duration(ms) * time.Millisecond), seq: int64(100 - i)}})
	}
	var got []int
	q := listQuery{limit: 2}
	for pages := 0; ; pages++ {
		items, next := page(list, q)
		got = append(got, items...)
		if next == nil {
			break
		}
		p, err := decodeCursor(*next)
		if err != nil || pages > 5 {
			t.Fatalf("cursor %q: %v", *next, err)
		}
		q.cursor = &p
	}
	if len(got) != 6 {
		t.Fatalf("got %v, want all six items once", got)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("got %v, want 0..5 in order", got)
		}
	}
}

// FuzzParseListQuery feeds arbitrary query strings to the list parameter parser: never a panic,
// and whatever is accepted is within bounds.
func FuzzParseListQuery(f *testing.F) {
	f.Add("limit=10&cursor=" + encodeCursor(position{at: time.UnixMilli(1700000000000), seq: 3}))
	f.Add("before=2026-11-24T10:00:00.000Z&after=2026-11-23T10:00:00.000Z")
	f.Add("limit=&cursor=%%%")
	f.Add("cursor=djEuMS4y")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			return
		}
		if lq.limit < 1 || lq.limit > maxLimit {
			t.Fatalf("limit %d accepted", lq.limit)
		}
		if lq.cursor != nil {
			back, err := decodeCursor(encodeCursor(*lq.cursor))
			if err != nil || !back.at.Equal(lq.cursor.at) || back.seq != lq.cursor.seq {
				t.Fatalf("cursor %+v does not round-trip: %+v, %v", *lq.cursor, back, err)
			}
		}
	})
}
