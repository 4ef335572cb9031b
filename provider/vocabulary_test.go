package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestVocabulary answers every documented problem type over HTTP and checks what the client
// makes of it: the class of a sending call and of a read, and the scope the worker acts on.
// The expectations are written out here, not read from the table: a change of the table must
// change this test too, and be reviewed as a change of what the worker retries, skips, fails
// or counts toward an account's breaker.
func TestVocabulary(t *testing.T) {
	P, T, R, U := ClassPermanent, ClassTransient, ClassRateLimited, ClassUnknownOutcome
	req, chat, acct, cred := ScopeRequest, ScopeChat, ScopeAccount, ScopeCredentials
	want := []struct {
		slug   string
		status int
		send   Class
		scope  Scope
	}{
		{"invalid_parameters", 400, P, req},
		{"missing_parameters", 400, P, req},
		{"invalid_request", 400, P, req},
		{"malformed_request", 400, P, req},
		{"content_too_large", 400, P, req},
		{"too_many_characters", 400, P, req},
		{"unescaped_characters", 400, P, req},
		{"limit_too_high", 400, P, req},
		{"invalid_action", 400, P, req},
		{"invalid_label", 400, P, req},
		{"invalid_url", 400, P, req},
		{"missing_credentials", 401, P, cred},
		{"invalid_credentials", 401, P, cred},
		{"insufficient_privileges", 401, P, cred},
		{"disconnected_account", 401, P, acct},
		{"disconnected_feature", 401, P, acct},
		{"expired_credentials", 401, P, acct},
		{"wrong_account", 401, P, acct},
		{"multiple_sessions", 401, P, acct},
		{"invalid_proxy_credentials", 401, P, acct},
		{"invalid_imap_configuration", 401, P, acct},
		{"invalid_smtp_configuration", 401, P, acct},
		{"invalid_credentials_but_valid_account_imap", 401, P, acct},
		{"invalid_checkpoint_solution", 401, P, req},
		{"checkpoint_error", 401, P, req},
		{"expired_link", 401, P, req},
		{"captcha_not_supported", 401, P, req},
		{"insufficient_permissions", 403, P, cred},
		{"account_restricted", 403, P, acct},
		{"account_mismatch", 403, P, chat},
		{"unknown_authentication_context", 403, P, acct},
		{"session_mismatch", 403, P, acct},
		{"feature_not_subscribed", 403, P, acct},
		{"subscription_required", 403, P, acct},
		{"action_required", 403, P, acct},
		{"resource_access_restricted", 403, P, chat},
		{"resource_not_found", 404, P, chat},
		{"invalid_resource_identifier", 404, P, chat},
		{"unsupported_media_type", 415, P, req},
		{"invalid_recipient", 422, P, chat},
		{"no_connection_with_recipient", 422, P, chat},
		{"blocked_recipient", 422, P, chat},
		{"user_unreachable", 422, P, chat},
		{"recipient_rejected", 422, P, chat},
		{"cant_send_message", 422, P, chat},
		{"invalid_account", 422, P, req},
		{"unprocessable_entity", 422, P, req},
		{"action_already_performed", 422, P, req},
		{"invalid_message", 422, P, req},
		{"invalid_post", 422, P, req},
		{"not_allowed_inmail", 422, P, req},
		{"insufficient_credits", 422, P, req},
		{"cannot_resend_yet", 422, P, req},
		{"cannot_resend_within_24hrs", 422, P, req},
		{"limit_exceeded", 422, P, req},
		{"already_invited_recently", 422, P, req},
		{"cannot_invite_attendee", 422, P, req},
		{"parent_mail_not_found", 422, P, req},
		{"invalid_reply_subject", 422, P, req},
		{"invalid_headers", 422, P, req},
		{"send_as_denied", 422, P, req},
		{"invalid_folder", 422, P, req},
		{"invalid_thread", 422, P, req},
		{"unauthorized", 422, P, req},
		{"sender_rejected", 422, P, req},
		{"ip_rejected_by_server", 422, P, req},
		{"account_configuration_error", 422, P, req},
		{"provider_unreachable", 422, T, req},
		{"realtime_client_not_initialized", 422, T, req},
		{"too_many_requests", 429, R, req},
		{"unexpected_error", 500, U, req},
		{"provider_error", 500, U, req},
		{"authentication_intent_error", 500, U, req},
		{"feature_not_implemented", 501, P, req},
		{"no_client_session", 503, T, acct},
		{"no_channel", 503, T, acct},
		{"no_handler", 503, T, req},
		{"network_down", 503, T, req},
		{"service_unavailable", 503, T, req},
		{"request_timeout", 504, U, req},
	}
	if len(want) != len(vocabulary) {
		t.Errorf("the test covers %d types, the vocabulary has %d", len(want), len(vocabulary))
	}
	byPath := map[string]int{}
	for i, w := range want {
		byPath["/api/v1/messages/"+w.slug] = i
		byPath["/api/v1/accounts/"+w.slug] = i
	}
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		row := want[byPath[r.URL.Path]]
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(row.status)
		io.WriteString(w, fmt.Sprintf(`{"type":"errors/%s","status":%d,"title":"t"}`, row.slug, row.status))
	}, func(o *Options) { o.ReadRetries = -1 })
	ctx := context.Background()
	for _, w := range want {
		pt, ok := LookupProblem("errors/" + w.slug)
		if !ok || pt.Status != w.status {
			t.Errorf("%s: not in the vocabulary with status %d (%+v)", w.slug, w.status, pt)
		}
		err := c.DeleteMessage(ctx, w.slug)
		if got := ClassOf(err); got != w.send {
			t.Errorf("%s %d on a sending call: class %s, want %s", w.slug, w.status, got, w.send)
		}
		if got := ScopeOf(err); got != w.scope {
			t.Errorf("%s %d: scope %s, want %s", w.slug, w.status, got, w.scope)
		}
		if got := IsAccountLevel(w.slug); got != (w.scope == ScopeAccount) {
			t.Errorf("%s: IsAccountLevel %v", w.slug, got)
		}
		_, err = c.GetAccount(ctx, w.slug)
		readWant := w.send
		if readWant == ClassUnknownOutcome {
			readWant = ClassTransient
		}
		if got := ClassOf(err); got != readWant {
			t.Errorf("%s %d on a read: class %s, want %s", w.slug, w.status, got, readWant)
		}
		if strings.Contains(err.Error(), "class(") {
			t.Errorf("%s: %s", w.slug, err)
		}
	}
}

// TestVocabularyStatusMismatch: a documented slug under another status (a gateway's own
// answer) is classified by its status, and has no documented scope.
func TestVocabularyStatusMismatch(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, `{"type":"errors/disconnected_account","status":502}`)
	}, func(o *Options) { o.ReadRetries = -1 })
	err := c.DeleteMessage(context.Background(), "m")
	if ClassOf(err) != ClassUnknownOutcome || ScopeOf(err) != ScopeRequest {
		t.Fatalf("%v: class %s scope %s", err, ClassOf(err), ScopeOf(err))
	}
	if _, ok := LookupProblem("no_such_type"); ok {
		t.Fatal("an unknown slug was found")
	}
}

// CheckCredentials tells a refusal of our credentials from everything else.
func TestCheckCredentials(t *testing.T) {
	answers := map[string]struct {
		status  int
		body    string
		refused bool
	}{
		"ok":        {200, `{"object":"ChatList","items":[],"cursor":null}`, false},
		"missing":   {401, `{"type":"errors/missing_credentials","status":401}`, true},
		"invalid":   {401, `{"type":"errors/invalid_credentials","status":401}`, true},
		"bare401":   {401, ``, true},
		"account":   {401, `{"type":"errors/disconnected_account","status":401}`, false},
		"down":      {503, `{"type":"errors/service_unavailable","status":503}`, false},
		"forbidden": {403, `{"type":"errors/insufficient_permissions","status":403}`, true},
	}
	for name, a := range answers {
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(a.status)
			io.WriteString(w, a.body)
		}, func(o *Options) { o.ReadRetries = -1 })
		err := c.CheckCredentials(context.Background())
		if got := errors.Is(err, ErrCredentialsRefused); got != a.refused || (name == "ok") != (err == nil) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
