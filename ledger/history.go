package ledger

import (
	"fmt"
	"strconv"

	"github.com/sendworker/sendworker/tasks"
)

// The record fields of an implicit history (hist_flush in lua/lib.lua): a
// send approved with no history list is marked hi = "1", and until another
// kind of event happens to it, its approval, first attempt and final event
// are told by fields of the record instead of being stored as events. The
// common send (approved, sent once) then never writes a history list: three
// RPUSHes, a PEXPIRE and their JSON less per send, and no list kept for the
// retention.
const (
	fHistImplicit = "hi"
	fAttemptAtMs  = "attempt_at_ms"
)

// Details of the routine events, as the scripts write them.
const (
	approvedDetail       = "approved"
	attemptStartedDetail = "attempt started"
)

// historyOf returns the history of the record h (decoded as rec): the stored
// events items, or, for an implicit history, the events the record tells.
// Either way the creation event comes first (decodeHistory).
func historyOf(h map[string]string, rec *tasks.Record, items []string) ([]tasks.Event, error) {
	if h[fHistImplicit] != "1" || len(items) > 0 {
		// A list with hi set: the record was read just before the script that wrote the
		// history out (GetWithBreaker's reads are not one MULTI), so the list is the whole
		// history; or an older release appended to it (hence stop-all upgrades, README).
		return decodeHistory(rec, items)
	}
	events, err := decodeHistory(rec, nil)
	if err != nil {
		return nil, err
	}
	ms := func(field string) (int64, bool, error) {
		v, ok := h[field]
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("%w: field %s: not a non-negative integer: %q", errBadRecord, field, v)
		}
		return n, true, nil
	}
	approved, ok, err := ms(fApprovedMs)
	if err != nil {
		return nil, err
	}
	if ok {
		events = append(events, tasks.Event{At: msTime(approved), State: tasks.StateApproved,
			By: h[fApprovedBy], Detail: approvedDetail})
	}
	started, ok, err := ms(fAttemptAtMs)
	if err != nil {
		return nil, err
	}
	if ok {
		events = append(events, tasks.Event{At: msTime(started), State: tasks.StateSending, Attempt: 1,
			Detail: attemptStartedDetail})
	}
	if rec.State.Terminal() {
		finished, _, err := ms(fFinishedMs)
		if err != nil {
			return nil, err
		}
		events = append(events, tasks.Event{At: msTime(finished), State: rec.State, Reason: rec.Reason,
			Attempt: rec.Attempts, Detail: rec.Detail})
	}
	return events, nil
}
