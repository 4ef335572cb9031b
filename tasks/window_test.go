package tasks_test

import (
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNextOpen(t *testing.T) {
	tp := func(s string) *time.Time { v := mustTime(t, s); return &v }
	weekdays := []string{"mon", "tue", "wed", "thu", "fri"}
	cases := []struct {
		name    string
		w       *tasks.Window
		now     string
		want    string // "" with expired
		expired bool
	}{
		{name: "nil window is open", w: nil, now: "2026-05-04T10:00:00Z", want: "2026-05-04T10:00:00Z"},
		{name: "empty window is open", w: &tasks.Window{}, now: "2026-05-04T10:00:00Z", want: "2026-05-04T10:00:00Z"},
		{name: "before not_before waits", w: &tasks.Window{NotBefore: tp("2026-05-04T12:00:00Z")}, now: "2026-05-04T10:00:00Z", want: "2026-05-04T12:00:00Z"},
		{name: "past not_after expires", w: &tasks.Window{NotAfter: tp("2026-05-04T09:00:00Z")}, now: "2026-05-04T10:00:00Z", expired: true},
		{name: "at not_after expires", w: &tasks.Window{NotAfter: tp("2026-05-04T10:00:00Z")}, now: "2026-05-04T10:00:00Z", expired: true},
		{name: "not_before after not_after expires", w: &tasks.Window{NotBefore: tp("2026-05-05T10:00:00Z"), NotAfter: tp("2026-05-05T09:00:00Z")}, now: "2026-05-04T10:00:00Z", expired: true},
		{name: "inside daily window", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-05-04T10:00:00Z", want: "2026-05-04T10:00:00Z"},
		{name: "before daily window same day", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-05-04T05:00:00Z", want: "2026-05-04T07:00:00Z"},
		{name: "after daily window opens next day", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-05-04T16:00:00Z", want: "2026-05-05T07:00:00Z"},
		{name: "to is exclusive", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-05-04T16:00:00Z", want: "2026-05-05T07:00:00Z"},
		{name: "friday evening waits for monday", w: &tasks.Window{Timezone: "Europe/Paris", Days: weekdays, From: "09:00", To: "18:00"}, now: "2026-05-08T17:00:00Z", want: "2026-05-11T07:00:00Z"},
		{name: "saturday waits for monday", w: &tasks.Window{Timezone: "America/New_York", Days: weekdays, From: "09:00", To: "17:00"}, now: "2026-05-09T15:00:00Z", want: "2026-05-11T13:00:00Z"},
		{name: "day is the recipient's day not UTC's", w: &tasks.Window{Timezone: "Asia/Tokyo", Days: []string{"mon"}}, now: "2026-05-10T14:00:00Z", want: "2026-05-10T15:00:00Z"},
		{name: "days without hours", w: &tasks.Window{Timezone: "Europe/Paris", Days: []string{"wed"}}, now: "2026-05-04T10:00:00Z", want: "2026-05-05T22:00:00Z"},
		{name: "window opens after not_after expires", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00", NotAfter: tp("2026-05-05T06:00:00Z")}, now: "2026-05-04T17:00:00Z", expired: true},
		{name: "window opens just before not_after", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00", NotAfter: tp("2026-05-05T07:00:01Z")}, now: "2026-05-04T17:00:00Z", want: "2026-05-05T07:00:00Z"},
		{name: "not_before then daily window", w: &tasks.Window{Timezone: "UTC", From: "09:00", To: "10:00", NotBefore: tp("2026-05-04T09:30:00Z")}, now: "2026-05-04T08:00:00Z", want: "2026-05-04T09:30:00Z"},

		// DST: Europe/Paris springs forward 2026-03-29 at 01:00Z (02:00 CET → 03:00 CEST) and
		// falls back 2026-10-25 at 01:00Z (03:00 CEST → 02:00 CET).
		{name: "paris 09:00 the day before spring forward is 08:00Z", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-03-28T20:00:00Z", want: "2026-03-29T07:00:00Z"},
		{name: "paris 09:00 after spring forward is 07:00Z", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-03-27T20:00:00Z", want: "2026-03-28T08:00:00Z"},
		{name: "from inside the skipped hour opens at the jump", w: &tasks.Window{Timezone: "Europe/Paris", From: "02:30", To: "04:00"}, now: "2026-03-29T00:00:00Z", want: "2026-03-29T01:00:00Z"},
		{name: "window entirely in the skipped hour skips that day", w: &tasks.Window{Timezone: "Europe/Paris", From: "02:10", To: "02:50"}, now: "2026-03-29T00:00:00Z", want: "2026-03-30T00:10:00Z"},
		{name: "repeated wall time opens at first occurrence", w: &tasks.Window{Timezone: "Europe/Paris", From: "02:30", To: "02:45"}, now: "2026-10-24T23:00:00Z", want: "2026-10-25T00:30:00Z"},
		{name: "repeated wall time opens again at second occurrence", w: &tasks.Window{Timezone: "Europe/Paris", From: "02:30", To: "02:45"}, now: "2026-10-25T00:50:00Z", want: "2026-10-25T01:30:00Z"},
		{name: "paris 09:00 after fall back is 08:00Z", w: &tasks.Window{Timezone: "Europe/Paris", From: "09:00", To: "18:00"}, now: "2026-10-24T17:00:00Z", want: "2026-10-25T08:00:00Z"},
		{name: "new york across spring forward", w: &tasks.Window{Timezone: "America/New_York", Days: []string{"mon"}, From: "09:00", To: "17:00"}, now: "2026-03-06T22:00:00Z", want: "2026-03-09T13:00:00Z"},
		{name: "new york across fall back", w: &tasks.Window{Timezone: "America/New_York", Days: []string{"mon"}, From: "09:00", To: "17:00"}, now: "2026-10-30T22:00:00Z", want: "2026-11-02T14:00:00Z"},
		{name: "inside window during the repeated hour", w: &tasks.Window{Timezone: "America/New_York", From: "01:00", To: "02:00"}, now: "2026-11-01T06:20:00Z", want: "2026-11-01T06:20:00Z"},
		{name: "lord howe half-hour shift", w: &tasks.Window{Timezone: "Australia/Lord_Howe", From: "02:00", To: "03:00"}, now: "2026-10-03T14:00:00Z", want: "2026-10-03T15:30:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, expired := tc.w.NextOpen(mustTime(t, tc.now))
			if expired != tc.expired {
				t.Fatalf("expired = %v, want %v (open %s)", expired, tc.expired, got.UTC().Format(time.RFC3339))
			}
			if tc.expired {
				return
			}
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Fatalf("open = %s, want %s", got.UTC().Format(time.RFC3339), want.Format(time.RFC3339))
			}
		})
	}
}

// TestNextOpenIsInside checks the defining property on many instants: the answer is inside the
// window (by the wall-clock definition) and no earlier minute after now is.
func TestNextOpenIsInside(t *testing.T) {
	w := &tasks.Window{Timezone: "Europe/Paris", Days: []string{"sun", "mon", "wed", "fri"}, From: "02:15", To: "03:20"}
	loc, _ := time.LoadLocation(w.Timezone)
	inside := func(x time.Time) bool {
		l := x.In(loc)
		switch l.Weekday() {
		case time.Sunday, time.Monday, time.Wednesday, time.Friday:
		default:
			return false
		}
		m := l.Hour()*60 + l.Minute()
		return m >= 2*60+15 && m < 3*60+20
	}
	for _, start := range []string{"2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z"} {
		now := mustTime(t, start)
		for i := 0; i < 4*24*60/37; i++ { // every 37 minutes for four days around the transition
			open, expired := w.NextOpen(now)
			if expired {
				t.Fatalf("%s: expired", now)
			}
			if !inside(open) {
				t.Fatalf("now %s: open %s is outside the window", now, open.In(loc))
			}
			for x := now.Truncate(time.Minute).Add(time.Minute); x.Before(open); x = x.Add(time.Minute) {
				if inside(x) {
					t.Fatalf("now %s: %s is inside but NextOpen said %s", now, x.In(loc), open.In(loc))
				}
			}
			now = now.Add(37 * time.Minute)
		}
	}
}
