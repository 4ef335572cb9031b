package tasks

import (
	"strconv"
	"time"
)

// maxWindowSearch bounds how far ahead NextOpen looks for the daily window. A valid window opens
// at least once a week, so eight days always suffice; the bound only protects against a window
// that can never open (no valid day), which validation refuses at enqueue.
const maxWindowSearch = 8 * 24 * time.Hour

// NextOpen returns the earliest instant at or after now when w allows sending, or expired when
// that instant does not come before w.NotAfter (or now is already past it).
//
// The daily window is defined on the recipient's wall clock: an instant is inside when its local
// weekday is one of Days (all days when empty) and its local time of day is in [From, To)
// (From empty = 00:00, To empty = end of day). That definition is DST-correct by construction:
// on a spring-forward day a From inside the skipped hour opens at the first instant after the
// jump; on a fall-back day a wall time that occurs twice opens at its first occurrence. NextOpen
// walks the constant-offset segments of the zone (between DST transitions), where local time is
// a plain shift of UTC, so no minute-by-minute scanning is needed.
//
// A nil window is always open. A time zone that cannot be loaded is treated as UTC; the
// handler refuses such a request before calling NextOpen.
func (w *Window) NextOpen(now time.Time) (open time.Time, expired bool) {
	if w == nil {
		return now, false
	}
	if w.NotAfter != nil && !now.Before(*w.NotAfter) {
		return time.Time{}, true
	}
	t := now
	if w.NotBefore != nil && t.Before(*w.NotBefore) {
		t = *w.NotBefore
	}
	if len(w.Days) > 0 || w.From != "" || w.To != "" {
		var ok bool
		t, ok = nextDaily(w, t)
		if !ok {
			return time.Time{}, true
		}
	}
	if w.NotAfter != nil && !t.Before(*w.NotAfter) {
		return time.Time{}, true
	}
	return t, false
}

// nextDaily returns the earliest instant at or after t inside the daily window.
func nextDaily(w *Window, t time.Time) (time.Time, bool) {
	loc := time.UTC
	if w.Timezone != "" {
		if l, err := time.LoadLocation(w.Timezone); err == nil {
			loc = l
		}
	}
	from, _ := parseHHMM(w.From, 0)
	to, _ := parseHHMM(w.To, 24*time.Hour)
	days := map[time.Weekday]bool{}
	for _, d := range w.Days {
		if wd, ok := weekdays[d]; ok {
			days[wd] = true
		}
	}
	if len(w.Days) > 0 && len(days) == 0 {
		return time.Time{}, false
	}
	limit := t.Add(maxWindowSearch)
	// Each iteration handles one segment of constant UTC offset; there are at most a few DST
	// transitions in eight days, the bound is only a guard.
	for seg := 0; seg < 64 && t.Before(limit); seg++ {
		local := t.In(loc)
		_, off := local.Zone()
		_, segEnd := local.ZoneBounds()
		end := limit
		if !segEnd.IsZero() && segEnd.Before(end) {
			end = segEnd
		}
		if x, ok := firstInSegment(t, end, time.Duration(off)*time.Second, from, to, days); ok {
			return x, true
		}
		if segEnd.IsZero() || !segEnd.After(t) {
			break
		}
		t = segEnd
	}
	return time.Time{}, false
}

// firstInSegment finds the earliest instant x in [t, end) whose wall time (x shifted by the
// constant offset off) is inside the window. Wall times are handled as UTC-naive times.
func firstInSegment(t, end time.Time, off, from, to time.Duration, days map[time.Weekday]bool) (time.Time, bool) {
	wall := t.UTC().Add(off)
	day := time.Date(wall.Year(), wall.Month(), wall.Day(), 0, 0, 0, 0, time.UTC)
	for ; ; day = day.AddDate(0, 0, 1) {
		// The first instant of this local day is already past the segment: nothing more here.
		if !day.Add(-off).Before(end) {
			return time.Time{}, false
		}
		if len(days) > 0 && !days[day.Weekday()] {
			continue
		}
		start, stop := day.Add(from), day.Add(to)
		if start.Before(wall) {
			start = wall
		}
		if !start.Before(stop) {
			continue
		}
		x := start.Add(-off)
		if !x.Before(end) {
			return time.Time{}, false
		}
		return x, true
	}
}

// parseHHMM parses "HH:MM" as a duration since midnight; empty gives def.
func parseHHMM(s string, def time.Duration) (time.Duration, bool) {
	if s == "" {
		return def, true
	}
	if !hhmmPattern.MatchString(s) {
		return def, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil {
		return def, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, true
}

// Problem reports a problem with a stored window that NextOpen would silently paper over
// (unknown zone, malformed times), or "". Such a request cannot have passed validation: the
// worker refuses it as invalid_payload rather than send at a guessed time.
func (w *Window) Problem() string {
	if w == nil {
		return ""
	}
	if w.Timezone != "" {
		if _, err := time.LoadLocation(w.Timezone); err != nil || w.Timezone == "Local" {
			return "window.timezone is not a known IANA zone"
		}
	} else if len(w.Days) > 0 || w.From != "" || w.To != "" {
		return "window.timezone is required with days, from or to"
	}
	if _, ok := parseHHMM(w.From, 0); !ok {
		return "window.from is not HH:MM"
	}
	if _, ok := parseHHMM(w.To, 0); !ok {
		return "window.to is not HH:MM"
	}
	for _, d := range w.Days {
		if _, ok := weekdays[d]; !ok {
			return "window.days has an unknown day"
		}
	}
	return ""
}
