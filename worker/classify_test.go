package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/worker/attachments"
)

// perr is a provider error as the client returns it: a status, an optional problem slug, the
// class the client gave it and an optional Retry-After.
func perr(op string, status int, slug string, class provider.Class, retryAfter time.Duration) *provider.Error {
	e := &provider.Error{Op: op, Status: status, Class: class, RetryAfter: retryAfter, Err: provider.ErrStatus}
	if slug != "" {
		e.Problem = &provider.Problem{Type: "errors/" + slug, Status: status}
	}
	return e
}

func finishD(state tasks.State, reason tasks.Reason, detail string) decision {
	return finishAs(state, reason, detail)
}

func waitD(reason tasks.Reason, after time.Duration, detail string) decision {
	return waitAs(reason, after, detail)
}

func penalized(d decision) decision { d.penalize = true; return d }

func refusedD(slug string) decision {
	d := waitAs(tasks.ReasonWaitAccountDown, 0, "provider: "+slug)
	d.refused, d.refusedSlug = true, slug
	return d
}

func transientD(detail, exhaustedDetail string) decision {
	d := waitAs(tasks.ReasonWaitTransient, 0, detail)
	d.exhausted, d.exhaustedDetail = tasks.ReasonRetriesExhausted, exhaustedDetail
	return d
}

func fetchD(err error) decision {
	d := waitAs(tasks.ReasonWaitTransient, 0, err.Error())
	d.exhausted, d.exhaustedDetail = tasks.ReasonAttachmentFetch, err.Error()
	return d
}

var reconcileD = decision{kind: kindRetry, reconcile: true}

// TestClassify is the mapping of failed calls, error class × error type × phase. read is the
// decision of every read phase, its detail a format taking the phase's name ("chat: ..."); account
// and chat override it where those phases decide on their own. attach zero means fetchD(err).
func TestClassify(t *testing.T) {
	const send = provider.OpChatsMessagesSend
	const read = provider.OpChatsGet
	// A read whose wait for the global rate failed, as the client returns it (provider.Options.Pacer).
	redisDown := &provider.Error{Op: read, Class: provider.ClassTransient,
		Err: &provider.PaceError{Err: errors.New("redis: connection refused")}}
	stopped := &provider.Error{Op: read, Class: provider.ClassTransient, Err: &provider.PaceError{Err: context.Canceled}}
	clientRefused := &provider.Error{Op: send, Class: provider.ClassPermanent,
		Err: fmt.Errorf("%w: chat id is required", provider.ErrInvalidArgument)}
	ctxInCall := &provider.Error{Op: read, Class: provider.ClassTransient, Err: context.DeadlineExceeded}
	origin := &attachments.Error{Index: 0, Kind: attachments.KindOrigin, Origin: "https://evil", Err: errors.New("not allowed")}
	tooLarge := &attachments.Error{Index: 1, Kind: attachments.KindTooLarge, Origin: "https://files", Err: errors.New("big")}
	mismatch := &attachments.Error{Index: 0, Kind: attachments.KindHashMismatch, Origin: "https://files", Err: errors.New("sha")}
	fetch := &attachments.Error{Index: 0, Kind: attachments.KindFetch, Origin: "https://files", Err: errors.New("status 500")}

	rejected := func(s string) decision {
		return finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "%s: provider refused the read ("+s+")")
	}
	unavailable := waitD(tasks.ReasonWaitProvider, 0, "%s: provider unavailable")
	chatGone := finishD(tasks.StateSkipped, tasks.ReasonChatNotFound, "the provider does not know the chat")
	accountGone := finishD(tasks.StateFailed, tasks.ReasonAccountDisconnected, "the provider does not know the account")
	skip := func(r tasks.Reason, slug string) decision { return finishD(tasks.StateSkipped, r, "provider: "+slug) }

	cases := []struct {
		name    string
		op      tasks.Operation // "": chats_messages_send
		err     error
		read    decision
		account decision
		chat    decision
		attach  decision
		send    decision
	}{
		// Rate limited.
		{name: "429 with Retry-After", err: perr(send, 429, provider.SlugTooManyRequests, provider.ClassRateLimited, 7*time.Second),
			read: penalized(waitD(tasks.ReasonWaitProvider, 7*time.Second, "%s: rate limited")),
			send: penalized(waitD(tasks.ReasonWaitProvider, 7*time.Second, "provider rate limit (429)"))},
		{name: "429 without Retry-After", err: perr(send, 429, "", provider.ClassRateLimited, 0),
			read: penalized(waitD(tasks.ReasonWaitProvider, 0, "%s: rate limited")),
			send: penalized(waitD(tasks.ReasonWaitProvider, 0, "provider rate limit (429)"))},

		// Transient.
		{name: "503 service_unavailable", err: perr(send, 503, provider.SlugServiceUnavailable, provider.ClassTransient, 0),
			read: unavailable,
			send: transientD("transient provider error: service_unavailable", "transient provider errors: service_unavailable")},
		{name: "503 without a body", err: perr(send, 503, "", provider.ClassTransient, 0),
			read: unavailable,
			send: transientD("transient provider error: status 503", "transient provider errors: status 503")},
		{name: "context error inside a provider error", err: ctxInCall,
			read: unavailable,
			send: transientD("transient provider error: error", "transient provider errors: error")},
		{name: "bare context canceled", err: context.Canceled,
			read: unavailable,
			send: transientD("transient provider error: error", "transient provider errors: error")},
		{name: "wrapped deadline exceeded", err: fmt.Errorf("chats: %w", context.DeadlineExceeded),
			read: unavailable,
			send: transientD("transient provider error: error", "transient provider errors: error")},

		// Unknown outcome: only a sending call reconciles; a read just waits.
		{name: "504 request_timeout", err: perr(send, 504, provider.SlugRequestTimeout, provider.ClassUnknownOutcome, 0),
			read: unavailable, send: reconcileD},
		{name: "500 without a body", err: perr(send, 500, "", provider.ClassUnknownOutcome, 0),
			read: unavailable, send: reconcileD},

		// Account scope, whatever the class: counted toward the breaker, the send waits.
		{name: "401 disconnected_account", err: perr(send, 401, provider.SlugDisconnectedAccount, provider.ClassPermanent, 0),
			read: refusedD(provider.SlugDisconnectedAccount), send: refusedD(provider.SlugDisconnectedAccount)},
		{name: "503 no_client_session", err: perr(send, 503, provider.SlugNoClientSession, provider.ClassTransient, 0),
			read: refusedD(provider.SlugNoClientSession), send: refusedD(provider.SlugNoClientSession)},
		{name: "403 account_restricted", err: perr(send, 403, provider.SlugAccountRestricted, provider.ClassPermanent, 0),
			read: refusedD(provider.SlugAccountRestricted), send: refusedD(provider.SlugAccountRestricted)},
		{name: "account slug with an undocumented status", err: perr(send, 500, provider.SlugDisconnectedAccount, provider.ClassUnknownOutcome, 0),
			read: unavailable, send: reconcileD},

		// Credentials scope: our configuration; the send waits.
		{name: "401 invalid_credentials", err: perr(send, 401, provider.SlugInvalidCredentials, provider.ClassPermanent, 0),
			read: waitD(tasks.ReasonWaitProvider, 0, "%s: provider credentials refused"),
			send: waitD(tasks.ReasonWaitProvider, 0, "provider: invalid_credentials")},

		// Chat scope.
		{name: "404 resource_not_found, message send", err: perr(send, 404, provider.SlugResourceNotFound, provider.ClassPermanent, 0),
			read: rejected(provider.SlugResourceNotFound), account: accountGone, chat: chatGone,
			send: skip(tasks.ReasonChatNotFound, provider.SlugResourceNotFound)},
		{name: "404 resource_not_found, reaction", op: tasks.OpReaction,
			err:  perr(send, 404, provider.SlugResourceNotFound, provider.ClassPermanent, 0),
			read: rejected(provider.SlugResourceNotFound), account: accountGone,
			chat: finishD(tasks.StateSkipped, tasks.ReasonMessageNotFound, "the provider does not know the chat"),
			send: skip(tasks.ReasonMessageNotFound, provider.SlugResourceNotFound)},
		{name: "404 resource_not_found, chats_create", op: tasks.OpCreateChat,
			err:  perr(send, 404, provider.SlugResourceNotFound, provider.ClassPermanent, 0),
			read: rejected(provider.SlugResourceNotFound), account: accountGone, chat: chatGone,
			send: finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: resource_not_found")},
		{name: "404 without a body", err: perr(send, 404, "", provider.ClassPermanent, 0),
			read: rejected("status 404"), account: accountGone, chat: chatGone,
			send: finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: status 404")},
		{name: "404 invalid_resource_identifier, edit", op: tasks.OpEdit,
			err:  perr(send, 404, "invalid_resource_identifier", provider.ClassPermanent, 0),
			read: rejected("invalid_resource_identifier"), account: accountGone,
			chat: finishD(tasks.StateSkipped, tasks.ReasonMessageNotFound, "the provider does not know the chat"),
			send: skip(tasks.ReasonMessageNotFound, "invalid_resource_identifier")},
		{name: "403 account_mismatch", err: perr(send, 403, provider.SlugAccountMismatch, provider.ClassPermanent, 0),
			read: rejected(provider.SlugAccountMismatch),
			chat: finishD(tasks.StateSkipped, tasks.ReasonAccountMismatch, "the chat belongs to another account"),
			send: skip(tasks.ReasonAccountMismatch, provider.SlugAccountMismatch)},
		{name: "422 invalid_recipient", err: perr(send, 422, provider.SlugInvalidRecipient, provider.ClassPermanent, 0),
			read: rejected(provider.SlugInvalidRecipient), send: skip(tasks.ReasonColdRecipient, provider.SlugInvalidRecipient)},
		{name: "422 no_connection_with_recipient", err: perr(send, 422, provider.SlugNoConnectionWithRecipient, provider.ClassPermanent, 0),
			read: rejected(provider.SlugNoConnectionWithRecipient), send: skip(tasks.ReasonColdRecipient, provider.SlugNoConnectionWithRecipient)},
		{name: "422 blocked_recipient", err: perr(send, 422, provider.SlugBlockedRecipient, provider.ClassPermanent, 0),
			read: rejected(provider.SlugBlockedRecipient), send: skip(tasks.ReasonRecipientBlocked, provider.SlugBlockedRecipient)},
		{name: "422 user_unreachable", err: perr(send, 422, provider.SlugUserUnreachable, provider.ClassPermanent, 0),
			read: rejected(provider.SlugUserUnreachable), send: skip(tasks.ReasonRecipientUnreachable, provider.SlugUserUnreachable)},
		{name: "422 recipient_rejected", err: perr(send, 422, "recipient_rejected", provider.ClassPermanent, 0),
			read: rejected("recipient_rejected"), send: skip(tasks.ReasonRecipientUnreachable, "recipient_rejected")},
		{name: "422 cant_send_message", err: perr(send, 422, provider.SlugCantSendMessage, provider.ClassPermanent, 0),
			read: rejected(provider.SlugCantSendMessage), send: skip(tasks.ReasonChatReadOnly, provider.SlugCantSendMessage)},
		{name: "403 resource_access_restricted", err: perr(send, 403, "resource_access_restricted", provider.ClassPermanent, 0),
			read: rejected("resource_access_restricted"), send: skip(tasks.ReasonChatReadOnly, "resource_access_restricted")},

		// Request scope.
		{name: "422 cannot_resend_yet", err: perr(send, 422, provider.SlugCannotResendYet, provider.ClassPermanent, 0),
			read: rejected(provider.SlugCannotResendYet), send: waitD(tasks.ReasonWaitProvider, 0, "provider: cannot_resend_yet")},
		{name: "400 invalid_parameters", err: perr(send, 400, provider.SlugInvalidParameters, provider.ClassPermanent, 0),
			read: rejected(provider.SlugInvalidParameters),
			send: finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: invalid_parameters")},
		{name: "422 provider_unreachable (transient by the vocabulary)", err: perr(send, 422, "provider_unreachable", provider.ClassTransient, 0),
			read: unavailable,
			send: transientD("transient provider error: provider_unreachable", "transient provider errors: provider_unreachable")},
		{name: "client refused the call", err: clientRefused,
			read: rejected("invalid argument"),
			send: finishD(tasks.StateFailed, tasks.ReasonInvalidPayload, "the provider client refused the call: invalid argument")},
		{name: "plain error", err: errors.New("boom"),
			read: rejected("error"),
			send: finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: error")},

		// The global rate wait before a read failed: the read did not happen.
		{name: "global rate limiter down", err: redisDown,
			read: decision{kind: kindRetry, after: 5 * time.Second, detail: "%s: global provider rate: redis: connection refused"},
			send: transientD("transient provider error: error", "transient provider errors: error")},
		{name: "stopped while waiting for the global rate", err: stopped,
			read: decision{kind: kindRetry, after: 5 * time.Second, detail: "%s: global provider rate: context canceled"},
			send: transientD("transient provider error: error", "transient provider errors: error")},

		// Attachments.
		{name: "attachment origin", err: origin, read: rejected("error"),
			attach: finishD(tasks.StateFailed, tasks.ReasonAttachmentOrigin, origin.Error()),
			send:   finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: error")},
		{name: "attachment too large", err: tooLarge, read: rejected("error"),
			attach: finishD(tasks.StateFailed, tasks.ReasonAttachmentTooLarge, tooLarge.Error()),
			send:   finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: error")},
		{name: "attachment hash mismatch", err: mismatch, read: rejected("error"),
			attach: finishD(tasks.StateFailed, tasks.ReasonAttachmentMismatch, mismatch.Error()),
			send:   finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: error")},
		{name: "attachment fetch", err: fetch, read: rejected("error"),
			send: finishD(tasks.StateFailed, tasks.ReasonProviderRejected, "provider: error")},
	}
	for _, c := range cases {
		op := c.op
		if op == "" {
			op = tasks.OpSendMessage
		}
		readAs := func(what string) decision {
			d := c.read
			if strings.Contains(d.detail, "%s") {
				d.detail = fmt.Sprintf(d.detail, what)
			}
			return d
		}
		want := map[phase]decision{
			phaseAccount:     c.account,
			phaseChat:        c.chat,
			phaseChats:       readAs("chats"),
			phaseMessages:    readAs("messages"),
			phaseAttachments: c.attach,
			phaseSend:        c.send,
		}
		if c.account == (decision{}) {
			want[phaseAccount] = readAs("account")
		}
		if c.chat == (decision{}) {
			want[phaseChat] = readAs("chat")
		}
		if c.attach == (decision{}) {
			want[phaseAttachments] = fetchD(c.err)
		}
		for ph, w := range want {
			got := classify(ph, op, c.err)
			if got != w {
				t.Errorf("%s, %s phase:\n got %+v\nwant %+v", c.name, ph.what(), got, w)
			}
			if got.reconcile && ph != phaseSend {
				t.Errorf("%s, %s phase: only a sending call reconciles", c.name, ph.what())
			}
		}
	}
}

// TestPermanentErrorInvalidArgument: a call the provider client refused itself (errors.Is
// provider.ErrInvalidArgument, no HTTP status) fails the send as invalid_payload; a refusal of
// the provider with no known slug fails it as provider_rejected. The check is by error
// identity, not by the error's text.
func TestPermanentErrorInvalidArgument(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want tasks.Reason
	}{
		{"client refused", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent,
			Err: fmt.Errorf("%w: chat id is required", provider.ErrInvalidArgument)}, tasks.ReasonInvalidPayload},
		{"text alone is not the error", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent,
			Err: fmt.Errorf("invalid argument")}, tasks.ReasonProviderRejected},
		{"provider refused", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent, Status: 400,
			Err: provider.ErrStatus}, tasks.ReasonProviderRejected},
	}
	for _, c := range cases {
		d := classify(phaseSend, tasks.OpSendMessage, c.err)
		if d.kind != kindFinish || d.state != tasks.StateFailed || d.reason != c.want {
			t.Errorf("%s: got kind %v state %q reason %q, want failed %q", c.name, d.kind, d.state, d.reason, c.want)
		}
	}
}

// TestDecided: a decision without side effects becomes its outcome: a finish as it is, a retry
// after its delay, a wait for the provider's Retry-After or the backoff counted from the send's
// earlier waits with the same reason, and an exhaustible wait fails once the budget is spent.
func TestDecided(t *testing.T) {
	now := mustTime(t, "2026-03-02T10:00:00Z")
	w := &Worker{opts: Options{Now: func() time.Time { return now }, BackoffBase: 4 * time.Second,
		BackoffMax: time.Minute, MaxTransientAttempts: 3}}
	waited := func(reason tasks.Reason, n int) *tasks.Record {
		rec := &tasks.Record{}
		for range n {
			rec.History = append(rec.History, tasks.Event{State: tasks.StateWaiting, Reason: reason})
		}
		return rec
	}
	exhaustible := transientD("transient provider error: x", "transient provider errors: x")

	cases := []struct {
		name     string
		rec      *tasks.Record
		d        decision
		want     outcome
		jitterTo time.Duration // the wait may end up to this much later (backoff jitter)
	}{
		{name: "finish", rec: &tasks.Record{}, d: finishD(tasks.StateSkipped, tasks.ReasonChatNotFound, "gone"),
			want: skipped(tasks.ReasonChatNotFound, "gone")},
		{name: "retry", rec: &tasks.Record{}, d: decision{kind: kindRetry, after: 5 * time.Second, detail: "chat: x"},
			want: retryAfter(5*time.Second, "chat: x")},
		{name: "Retry-After", rec: waited(tasks.ReasonWaitProvider, 4),
			d:    waitD(tasks.ReasonWaitProvider, 7*time.Second, "chat: provider unavailable"),
			want: wait(now.Add(7*time.Second), tasks.ReasonWaitProvider, "chat: provider unavailable")},
		{name: "first backoff", rec: &tasks.Record{}, d: waitD(tasks.ReasonWaitProvider, 0, "d"),
			want: wait(now.Add(4*time.Second), tasks.ReasonWaitProvider, "d"), jitterTo: 2 * time.Second},
		{name: "backoff counts waits of the same reason", rec: waited(tasks.ReasonWaitProvider, 2),
			d:    waitD(tasks.ReasonWaitProvider, 0, "d"),
			want: wait(now.Add(16*time.Second), tasks.ReasonWaitProvider, "d"), jitterTo: 2 * time.Second},
		{name: "other reasons do not count", rec: waited(tasks.ReasonWaitRateLimit, 5),
			d:    waitD(tasks.ReasonWaitProvider, 0, "d"),
			want: wait(now.Add(4*time.Second), tasks.ReasonWaitProvider, "d"), jitterTo: 2 * time.Second},
		{name: "budget left", rec: waited(tasks.ReasonWaitTransient, 1), d: exhaustible,
			want: wait(now.Add(8*time.Second), tasks.ReasonWaitTransient, "transient provider error: x"), jitterTo: 2 * time.Second},
		{name: "budget spent", rec: waited(tasks.ReasonWaitTransient, 2), d: exhaustible,
			want: failed(tasks.ReasonRetriesExhausted, "transient provider errors: x")},
	}
	for _, c := range cases {
		x := &execution{w: w, op: tasks.OpSendMessage, rec: c.rec}
		got := x.decided(context.Background(), c.d, time.Time{})
		late := got.until.Sub(c.want.until)
		got.until = c.want.until
		if late < 0 || late > c.jitterTo {
			t.Errorf("%s: waits until %s after the expected %s, want at most %s", c.name, late, c.want.until, c.jitterTo)
		}
		if got.kind != c.want.kind || got.state != c.want.state || got.reason != c.want.reason ||
			got.detail != c.want.detail || got.delay != c.want.delay {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
