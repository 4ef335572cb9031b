package worker

import (
	"testing"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// Only the takeovers of an attempt are reads of its chat: the watchdog's recoveries, EndCall
// and a cancel or reject asked while sending are not.
func TestReconcileTries(t *testing.T) {
	start := tasks.Event{State: tasks.StateSending, Attempt: 1, Detail: "attempt started"}
	takeover := tasks.Event{State: tasks.StateSending, Attempt: 1, Detail: "lease expired: reconciling"}
	tests := []struct {
		name    string
		history []tasks.Event
		want    int
	}{
		{"just started", []tasks.Event{start}, 0},
		{"one takeover", []tasks.Event{start, takeover}, 1},
		{"end call is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, Reason: tasks.ReasonUnknownOutcome}, takeover}, 1},
		{"recovery is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, By: ledger.RecoveredBy}, takeover}, 1},
		{"cancel while sending is not a try", []tasks.Event{start, {State: tasks.StateSending, Attempt: 1, Reason: tasks.ReasonCanceled, By: "admin"}, takeover, takeover}, 2},
		{"another attempt's takeovers do not count", []tasks.Event{start, {State: tasks.StateSending, Attempt: 2, Detail: "lease expired: reconciling"}}, 0},
		{"no history", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reconcileTries(&tasks.Record{History: tt.history}, 1); got != tt.want {
				t.Errorf("tries = %d, want %d", got, tt.want)
			}
		})
	}
}
