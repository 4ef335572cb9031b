package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

var readOps = []string{OpAccountsGet, OpAccountsSync, OpChatsList, OpChatsGet, OpChatsMessagesList, OpChatsAttendeesList}

var sendOps = []string{OpChatsMessagesSend, OpChatsCreate, OpMessagesReaction, OpMessagesEdit, OpMessagesDelete}

// TestClassifyStatus is the table of every provider status to its class, for read and
// sending calls. A change here changes what the worker retries: review it as such.
func TestClassifyStatus(t *testing.T) {
	P, T, R, U := ClassPermanent, ClassTransient, ClassRateLimited, ClassUnknownOutcome
	table := []struct {
		status     int
		slug       string // the provider's documented slug for it, for the reader
		read, send Class
	}{
		{300, "", P, P},
		{301, "", P, P},
		{302, "", P, P},
		{304, "", P, P},
		{307, "", P, P},
		{308, "", P, P},
		{400, "invalid_parameters / too_many_characters", P, P},
		{401, "disconnected_account / invalid_credentials / missing_credentials", P, P},
		{402, "", P, P},
		{403, "account_mismatch / account_restricted", P, P},
		{404, "resource_not_found", P, P},
		{405, "", P, P},
		{408, "", P, P},
		{409, "", P, P},
		{410, "", P, P},
		{413, "", P, P},
		{415, "unsupported_media_type", P, P},
		{422, "invalid_recipient / no_connection_with_recipient / blocked_recipient / user_unreachable / cannot_resend_yet", P, P},
		{429, "too_many_requests", R, R},
		{499, "", P, P},
		{500, "unexpected_error / provider_error", T, U},
		{501, "feature_not_implemented", P, P},
		{502, "", T, U},
		{503, "network_down / service_unavailable", T, T},
		{504, "request_timeout", T, U},
		{505, "", T, T},
		{507, "", T, T},
		{511, "", T, T},
		{599, "", T, T},
	}
	for _, row := range table {
		for _, op := range readOps {
			if got := classifyStatus(op, row.status); got != row.read {
				t.Errorf("%s %d (%s): %s, want %s", op, row.status, row.slug, got, row.read)
			}
		}
		for _, op := range sendOps {
			if got := classifyStatus(op, row.status); got != row.send {
				t.Errorf("%s %d (%s): %s, want %s", op, row.status, row.slug, got, row.send)
			}
		}
	}
}

func TestClassifyTransport(t *testing.T) {
	for _, op := range readOps {
		if got := classifyTransport(op, false); got != ClassTransient {
			t.Errorf("%s not written: %s", op, got)
		}
		if got := classifyTransport(op, true); got != ClassTransient {
			t.Errorf("%s written: %s", op, got)
		}
	}
	for _, op := range sendOps {
		if got := classifyTransport(op, false); got != ClassTransient {
			t.Errorf("%s not written: %s", op, got)
		}
		if got := classifyTransport(op, true); got != ClassUnknownOutcome {
			t.Errorf("%s written: %s", op, got)
		}
	}
}

func TestIsSending(t *testing.T) {
	for _, op := range sendOps {
		if !IsSending(op) {
			t.Errorf("IsSending(%q) = false", op)
		}
	}
	for _, op := range append(readOps, "", "chats_messages_sendx") {
		if IsSending(op) {
			t.Errorf("IsSending(%q) = true", op)
		}
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		ClassPermanent: "permanent", ClassTransient: "transient",
		ClassRateLimited: "rate_limited", ClassUnknownOutcome: "unknown_outcome", Class(9): "class(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", int(c), got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999999", 24 * time.Hour},
		{"1.5", 0},
		{"soon", 0},
		{"Tue, 24 Nov 2026 10:00:30 GMT", 30 * time.Second},
		{"Tuesday, 24-Nov-26 10:01:00 GMT", time.Minute}, // RFC 850
		{"Tue Nov 24 10:00:05 2026", 5 * time.Second},    // ANSI C
		{"Tue, 24 Nov 2026 09:00:00 GMT", 0},             // in the past
		{"Tue, 24 Nov 2099 09:00:00 GMT", 24 * time.Hour},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestClassOf(t *testing.T) {
	provErr := &Error{Op: OpChatsMessagesSend, Class: ClassUnknownOutcome, Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"provider error", provErr, ClassUnknownOutcome},
		{"wrapped provider error", fmt.Errorf("worker: %w", provErr), ClassUnknownOutcome},
		{"rate limited", &Error{Class: ClassRateLimited}, ClassRateLimited},
		{"canceled", context.Canceled, ClassTransient},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassTransient},
		{"net timeout", os.ErrDeadlineExceeded, ClassTransient},
		{"other", errors.New("boom"), ClassPermanent},
		{"nil", nil, ClassPermanent},
	} {
		if got := ClassOf(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSlugAndHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"errors/disconnected_account":                        "disconnected_account",
		"https://example.com/errors/feature_not_implemented": "feature_not_implemented",
		"plain":      "plain",
		"":           "",
		" errors/x ": "x",
		"errors/":    "",
	} {
		if got := (Problem{Type: in}).Slug(); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
	err := fmt.Errorf("wrapped: %w", &Error{Status: 501, Problem: &Problem{Type: "errors/feature_not_implemented"}, Err: ErrStatus})
	if SlugOf(err) != SlugFeatureNotImplemented || !IsNotImplemented(err) || StatusOf(err) != 501 {
		t.Errorf("helpers on %v: slug %q, status %d", err, SlugOf(err), StatusOf(err))
	}
	if SlugOf(errors.New("x")) != "" || IsNotImplemented(errors.New("x")) || StatusOf(nil) != 0 || RetryAfterOf(nil) != 0 {
		t.Error("helpers on foreign errors must be empty")
	}
	if !IsNotImplemented(&Error{Status: http.StatusNotImplemented}) {
		t.Error("a 501 without body is not implemented")
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{
		Op: OpChatsMessagesSend, Method: "POST", Path: "/api/v1/chats/c1/messages", Status: 422,
		Class: ClassPermanent, Err: ErrStatus,
		Problem: &Problem{Type: "errors/invalid_recipient", Title: "Invalid recipient", Detail: "the text 'hello secret' cannot go"},
	}
	want := `provider: chats_messages_send POST /api/v1/chats/c1/messages: 422 invalid_recipient (Invalid recipient) [permanent]`
	if got := e.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e = &Error{Op: OpChatsList, Method: "GET", Path: "/api/v1/chats", Status: 429, Class: ClassRateLimited, Err: ErrStatus, RetryAfter: 3 * time.Second}
	want = `provider: chats_list GET /api/v1/chats: 429 (retry after 3s) [rate_limited]`
	if got := e.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e = &Error{Op: OpMessagesDelete, Method: "DELETE", Path: "/api/v1/messages/m", Class: ClassUnknownOutcome, Err: context.DeadlineExceeded}
	want = `provider: messages_delete DELETE /api/v1/messages/m: context deadline exceeded [unknown_outcome]`
	if got := e.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Error("Unwrap must expose the cause")
	}
}
