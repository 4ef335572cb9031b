package metrics

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

func TestSendFinished(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.SendFinished(tasks.OpSendMessage, tasks.StateSent, "")
	m.SendFinished(tasks.OpSendMessage, tasks.StateSent, "")
	m.SendFinished(tasks.OpCreateChat, tasks.StateSkipped, tasks.ReasonColdRecipient)
	m.SendFinished(tasks.OpDelete, tasks.StateFailed, tasks.ReasonProviderRejected)
	// Outside the closed sets: bounded to "other", never the raw value.
	m.SendFinished("whatsapp:nope", "weird", "Free Text with spaces")
	m.SendFinished(tasks.OpEdit, tasks.StateNeedsReview, tasks.Reason(strings.Repeat("a", 65)))

	const name = "sendworker_sends_finished_total"
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{lbl("operation", "chats_messages_send", "state", "sent", "reason", ""), 2},
		{lbl("operation", "chats_create", "state", "skipped", "reason", "cold_recipient"), 1},
		{lbl("operation", "messages_delete", "state", "failed", "reason", "provider_rejected"), 1},
		{lbl("operation", "other", "state", "other", "reason", "other"), 1},
		{lbl("operation", "messages_edit", "state", "needs_review", "reason", "other"), 1},
	} {
		if got := mustSeries(t, reg, name, tc.labels).value; got != tc.want {
			t.Errorf("%s%v = %v, want %v", name, tc.labels, got, tc.want)
		}
	}
	if n := collectCount(m.sendsFinished); n != 5 {
		t.Errorf("%d series, want 5", n)
	}
}

func TestApprovalWait(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.ApprovalWait(90 * time.Second)
	m.ApprovalWait(2 * time.Hour)
	m.ApprovalWait(-time.Second) // clock skew counts as 0, not as a negative wait
	s := mustSeries(t, reg, "sendworker_approval_wait_seconds", lbl())
	if s.count != 3 || s.sum != 90+7200 {
		t.Errorf("approval wait: count %d sum %v, want 3 and 7290", s.count, s.sum)
	}
}

func TestDeferred(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.Deferred(tasks.ReasonWaitRateLimit, 30*time.Second)
	m.Deferred(tasks.ReasonWaitRateLimit, 10*time.Second)
	m.Deferred(tasks.ReasonWaitWindow, 8*time.Hour)
	m.Deferred(tasks.ReasonWaitPaused, 0)
	m.Deferred(tasks.ReasonWaitAccountDown, time.Minute)
	m.Deferred(tasks.ReasonWaitProvider, 5*time.Second)

	const name = "sendworker_wait_seconds"
	for _, tc := range []struct {
		reason string
		count  uint64
		sum    float64
	}{
		{"rate_limit", 2, 40},
		{"send_window", 1, 8 * 3600},
		{"paused", 1, 0},
		{"account_unhealthy", 1, 60},
		{"provider_backoff", 1, 5},
	} {
		s := mustSeries(t, reg, name, lbl("reason", tc.reason))
		if s.count != tc.count || s.sum != tc.sum {
			t.Errorf("%s{reason=%q}: count %d sum %v, want %d and %v", name, tc.reason, s.count, s.sum, tc.count, tc.sum)
		}
	}
}

func TestSetBreaker(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	const name = "sendworker_account_breaker_open"

	m.SetBreaker("acc-1", true)
	m.SetBreaker("acc-2", true)
	m.SetBreaker("acc-2", true) // idempotent
	if v := mustSeries(t, reg, name, lbl("account_id", "acc-1")).value; v != 1 {
		t.Errorf("acc-1 open = %v, want 1", v)
	}
	if n := collectCount(m.breakerOpen); n != 2 {
		t.Errorf("%d series while two accounts are open, want 2", n)
	}

	m.SetBreaker("acc-1", false)
	if _, ok := series(t, reg, name, lbl("account_id", "acc-1")); ok {
		t.Error("closing acc-1 kept its series")
	}
	// Healthy accounts never create a series.
	for i := range 1000 {
		m.SetBreaker(fmt.Sprintf("healthy-%d", i), false)
	}
	if n := collectCount(m.breakerOpen); n != 1 {
		t.Errorf("%d series with one account open, want 1", n)
	}
}

func TestProviderError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	fail := func(op string, status int, class provider.Class) provider.Exchange {
		return provider.Exchange{Op: op, Status: status, Err: &provider.Error{Op: op, Status: status, Class: class}}
	}
	m.ObserveProvider(fail(provider.OpChatsMessagesSend, 504, provider.ClassUnknownOutcome))
	m.ObserveProvider(fail(provider.OpChatsMessagesSend, 0, provider.ClassUnknownOutcome))
	m.ObserveProvider(fail(provider.OpAccountsGet, 429, provider.ClassRateLimited))
	m.ObserveProvider(fail(provider.OpChatsList, 503, provider.ClassTransient))
	m.ObserveProvider(fail(provider.OpMessagesEdit, 400, provider.ClassPermanent))
	m.ObserveProvider(fail("/api/v1/chats/secret-id", 500, provider.Class(9)))
	// A request that succeeded is no error.
	m.ObserveProvider(provider.Exchange{Op: provider.OpChatsList, Status: 200})

	const name = "sendworker_provider_errors_total"
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{lbl("operation", "chats_messages_send", "class", "unknown_outcome"), 2},
		{lbl("operation", "accounts_get", "class", "rate_limited"), 1},
		{lbl("operation", "chats_list", "class", "transient"), 1},
		{lbl("operation", "messages_edit", "class", "permanent"), 1},
		{lbl("operation", "other", "class", "other"), 1},
	} {
		if got := mustSeries(t, reg, name, tc.labels).value; got != tc.want {
			t.Errorf("%s%v = %v, want %v", name, tc.labels, got, tc.want)
		}
	}
}

// TestNames pins the exposed names (dashboards and alerts depend on them) and
// runs Prometheus' linter over them.
func TestNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.SendFinished(tasks.OpSendMessage, tasks.StateSent, "")
	m.ApprovalWait(time.Minute)
	m.Deferred(tasks.ReasonWaitRateLimit, time.Second)
	m.SetBreaker("acc", true)
	m.ObserveProvider(provider.Exchange{Op: provider.OpChatsList, Status: 200, Duration: time.Millisecond})
	m.ObserveProvider(provider.Exchange{Op: provider.OpChatsGet, Err: &provider.Error{Class: provider.ClassTransient}})
	want := map[string]float64{
		"sendworker_sends_finished_total{operation=chats_messages_send,reason=,state=sent}": 1,
		"sendworker_provider_request_duration_seconds{operation=chats_list,status=200}":     1,
		"sendworker_provider_request_duration_seconds{operation=chats_get,status=error}":    1,
		"sendworker_approval_wait_seconds{}":                                                1,
		"sendworker_wait_seconds{reason=rate_limit}":                                        1,
		"sendworker_account_breaker_open{account_id=acc}":                                   1,
		"sendworker_provider_errors_total{class=transient,operation=chats_get}":             1,
	}
	if got := snapshotOf(t, reg); !maps.Equal(got, want) {
		t.Errorf("exposed series:\n got %v\nwant %v", got, want)
	}
	lint(t, reg)
}

func TestNewTwiceOnOneRegistryShares(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a, b := New(reg), New(reg)
	a.ApprovalWait(time.Minute)
	b.ApprovalWait(time.Minute)
	if s := mustSeries(t, reg, "sendworker_approval_wait_seconds", lbl()); s.count != 2 {
		t.Errorf("count %d, want 2 (both Metrics share the collector)", s.count)
	}
}

func TestNewWithoutRegistry(t *testing.T) {
	m := New(nil)
	m.SendFinished(tasks.OpSendMessage, tasks.StateSent, "")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.sendsFinished)
	if v := mustSeries(t, reg, "sendworker_sends_finished_total", lbl("operation", "chats_messages_send", "state", "sent", "reason", "")).value; v != 1 {
		t.Errorf("unregistered metrics still count: got %v, want 1", v)
	}
}

func TestNilMetricsIsSafe(t *testing.T) {
	var m *Metrics
	m.SendFinished(tasks.OpSendMessage, tasks.StateSent, "")
	m.ApprovalWait(time.Minute)
	m.Deferred(tasks.ReasonWaitRateLimit, time.Second)
	m.SetBreaker("acc", true)
	m.SetBreaker("acc", false)
	m.ObserveProvider(provider.Exchange{Op: provider.OpChatsGet, Err: &provider.Error{Class: provider.ClassTransient}})
}
