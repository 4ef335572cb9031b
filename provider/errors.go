package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class says what the caller may do after a failed call. The worker maps each class to one
// action, so every error the client returns carries exactly one.
type Class int

const (
	// ClassPermanent: the provider refused the call (or the call was invalid); repeating it
	// unchanged will fail the same way. Nothing was sent.
	ClassPermanent Class = iota
	// ClassTransient: the call failed in a way that may pass later, and for a sending call
	// the provider is known not to have acted on it. Safe to retry.
	ClassTransient
	// ClassRateLimited: the provider asked us to slow down (HTTP 429). Wait RetryAfter (or
	// back off when it is zero) and try again; it is not a failure of the send.
	ClassRateLimited
	// ClassUnknownOutcome: a sending call went out and no trustworthy answer came back (504,
	// timeout, connection lost after the request was written). The message may have been
	// delivered: reconcile against the chat before anything else. Never used for reads.
	ClassUnknownOutcome
)

// String returns the class as a stable snake_case word, fit for metric labels and logs.
func (c Class) String() string {
	switch c {
	case ClassPermanent:
		return "permanent"
	case ClassTransient:
		return "transient"
	case ClassRateLimited:
		return "rate_limited"
	case ClassUnknownOutcome:
		return "unknown_outcome"
	default:
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
}

// Problem is a problem-details error body as the provider sends it:
// {"type":"errors/<slug>","title","detail","instance","status"}.
type Problem struct {
	Type     string
	Title    string
	Detail   string
	Instance string
	Status   int
}

// Slug returns the last segment of Type: "errors/disconnected_account" gives
// "disconnected_account". The list of types is open; unknown slugs are returned as they are.
func (p Problem) Slug() string {
	t := strings.TrimSpace(p.Type)
	if i := strings.LastIndexByte(t, '/'); i >= 0 {
		t = t[i+1:]
	}
	return t
}

// Slugs of the problem types the worker names in code. Every documented type, with its status,
// class and scope, is in the vocabulary table below; the list is open: new slugs appear
// without notice, so code that switches on slugs needs a default branch.
const (
	SlugInvalidParameters         = "invalid_parameters"
	SlugTooManyCharacters         = "too_many_characters"
	SlugContentTooLarge           = "content_too_large"
	SlugDisconnectedAccount       = "disconnected_account"
	SlugDisconnectedFeature       = "disconnected_feature"
	SlugExpiredCredentials        = "expired_credentials"
	SlugWrongAccount              = "wrong_account"
	SlugMultipleSessions          = "multiple_sessions"
	SlugInvalidCredentials        = "invalid_credentials"
	SlugMissingCredentials        = "missing_credentials"
	SlugAccountMismatch           = "account_mismatch"
	SlugAccountRestricted         = "account_restricted"
	SlugResourceNotFound          = "resource_not_found"
	SlugUnsupportedMediaType      = "unsupported_media_type"
	SlugInvalidRecipient          = "invalid_recipient"
	SlugNoConnectionWithRecipient = "no_connection_with_recipient"
	SlugBlockedRecipient          = "blocked_recipient"
	SlugUserUnreachable           = "user_unreachable"
	SlugCantSendMessage           = "cant_send_message"
	SlugCannotResendYet           = "cannot_resend_yet"
	SlugTooManyRequests           = "too_many_requests"
	SlugUnexpectedError           = "unexpected_error"
	SlugProviderError             = "provider_error"
	SlugFeatureNotImplemented     = "feature_not_implemented"
	SlugNoClientSession           = "no_client_session"
	SlugNoChannel                 = "no_channel"
	SlugNetworkDown               = "network_down"
	SlugServiceUnavailable        = "service_unavailable"
	SlugRequestTimeout            = "request_timeout"
)

// Scope says what a refused call is about, and so what the worker does beyond the class:
//
//	ScopeRequest      this call only: the send fails (or is retried, as its class says)
//	ScopeChat         the chat or its recipient: the send is skipped with a reason code
//	ScopeAccount      the WhatsApp account or its session: counted toward the account breaker,
//	                  the send waits (account_unhealthy)
//	ScopeCredentials  our own API key or token: the send waits for operators (provider_backoff)
type Scope int

const (
	ScopeRequest Scope = iota
	ScopeChat
	ScopeAccount
	ScopeCredentials
)

// String returns the scope as a stable snake_case word.
func (s Scope) String() string {
	switch s {
	case ScopeRequest:
		return "request"
	case ScopeChat:
		return "chat"
	case ScopeAccount:
		return "account"
	case ScopeCredentials:
		return "credentials"
	default:
		return "scope(" + strconv.Itoa(int(s)) + ")"
	}
}

// ProblemType is one documented problem type of the provider's v1 API: its slug, the status it
// comes with, the class of a sending call that meets it (a read never gets
// ClassUnknownOutcome: it becomes ClassTransient) and its scope.
type ProblemType struct {
	Slug   string
	Status int
	Class  Class
	Scope  Scope
}

// vocabulary is the provider's documented error vocabulary (v1 API reference; sources in
// docs/PROVIDER-NOTES.md), one row per type. It is the one table of what each answer means:
// the client classifies with it, the worker acts on its scope. Types documented for other
// providers (mail, LinkedIn) are kept so that an answer is never "unknown" only because it
// was unexpected.
var vocabulary = []ProblemType{
	// 400: the request itself.
	{"invalid_parameters", 400, ClassPermanent, ScopeRequest},
	{"missing_parameters", 400, ClassPermanent, ScopeRequest},
	{"invalid_request", 400, ClassPermanent, ScopeRequest},
	{"malformed_request", 400, ClassPermanent, ScopeRequest},
	{"content_too_large", 400, ClassPermanent, ScopeRequest},
	{"too_many_characters", 400, ClassPermanent, ScopeRequest},
	{"unescaped_characters", 400, ClassPermanent, ScopeRequest},
	{"limit_too_high", 400, ClassPermanent, ScopeRequest},
	{"invalid_action", 400, ClassPermanent, ScopeRequest},
	{"invalid_label", 400, ClassPermanent, ScopeRequest},
	{"invalid_url", 400, ClassPermanent, ScopeRequest},
	// 401: our credentials, or the account's session with WhatsApp.
	{"missing_credentials", 401, ClassPermanent, ScopeCredentials},
	{"invalid_credentials", 401, ClassPermanent, ScopeCredentials},
	{"insufficient_privileges", 401, ClassPermanent, ScopeCredentials},
	{"disconnected_account", 401, ClassPermanent, ScopeAccount},
	{"disconnected_feature", 401, ClassPermanent, ScopeAccount},
	{"expired_credentials", 401, ClassPermanent, ScopeAccount},
	{"wrong_account", 401, ClassPermanent, ScopeAccount},
	{"multiple_sessions", 401, ClassPermanent, ScopeAccount},
	{"invalid_proxy_credentials", 401, ClassPermanent, ScopeAccount},
	{"invalid_imap_configuration", 401, ClassPermanent, ScopeAccount},
	{"invalid_smtp_configuration", 401, ClassPermanent, ScopeAccount},
	{"invalid_credentials_but_valid_account_imap", 401, ClassPermanent, ScopeAccount},
	{"invalid_checkpoint_solution", 401, ClassPermanent, ScopeRequest},
	{"checkpoint_error", 401, ClassPermanent, ScopeRequest},
	{"expired_link", 401, ClassPermanent, ScopeRequest},
	{"captcha_not_supported", 401, ClassPermanent, ScopeRequest},
	// 403.
	{"insufficient_permissions", 403, ClassPermanent, ScopeCredentials},
	{"account_restricted", 403, ClassPermanent, ScopeAccount},
	{"account_mismatch", 403, ClassPermanent, ScopeChat},
	{"unknown_authentication_context", 403, ClassPermanent, ScopeAccount},
	{"session_mismatch", 403, ClassPermanent, ScopeAccount},
	{"feature_not_subscribed", 403, ClassPermanent, ScopeAccount},
	{"subscription_required", 403, ClassPermanent, ScopeAccount},
	{"action_required", 403, ClassPermanent, ScopeAccount},
	{"resource_access_restricted", 403, ClassPermanent, ScopeChat},
	// 404.
	{"resource_not_found", 404, ClassPermanent, ScopeChat},
	{"invalid_resource_identifier", 404, ClassPermanent, ScopeChat},
	// 415: "the media has been rejected by the provider".
	{"unsupported_media_type", 415, ClassPermanent, ScopeRequest},
	// 422: the provider could not act on a well-formed request.
	{"invalid_recipient", 422, ClassPermanent, ScopeChat},
	{"no_connection_with_recipient", 422, ClassPermanent, ScopeChat},
	{"blocked_recipient", 422, ClassPermanent, ScopeChat},
	{"user_unreachable", 422, ClassPermanent, ScopeChat},
	{"recipient_rejected", 422, ClassPermanent, ScopeChat},
	{"cant_send_message", 422, ClassPermanent, ScopeChat},
	{"invalid_account", 422, ClassPermanent, ScopeRequest},
	{"unprocessable_entity", 422, ClassPermanent, ScopeRequest},
	{"action_already_performed", 422, ClassPermanent, ScopeRequest},
	{"invalid_message", 422, ClassPermanent, ScopeRequest},
	{"invalid_post", 422, ClassPermanent, ScopeRequest},
	{"not_allowed_inmail", 422, ClassPermanent, ScopeRequest},
	{"insufficient_credits", 422, ClassPermanent, ScopeRequest},
	{"cannot_resend_yet", 422, ClassPermanent, ScopeRequest},
	{"cannot_resend_within_24hrs", 422, ClassPermanent, ScopeRequest},
	{"limit_exceeded", 422, ClassPermanent, ScopeRequest},
	{"already_invited_recently", 422, ClassPermanent, ScopeRequest},
	{"cannot_invite_attendee", 422, ClassPermanent, ScopeRequest},
	{"parent_mail_not_found", 422, ClassPermanent, ScopeRequest},
	{"invalid_reply_subject", 422, ClassPermanent, ScopeRequest},
	{"invalid_headers", 422, ClassPermanent, ScopeRequest},
	{"send_as_denied", 422, ClassPermanent, ScopeRequest},
	{"invalid_folder", 422, ClassPermanent, ScopeRequest},
	{"invalid_thread", 422, ClassPermanent, ScopeRequest},
	{"unauthorized", 422, ClassPermanent, ScopeRequest},
	{"sender_rejected", 422, ClassPermanent, ScopeRequest},
	{"ip_rejected_by_server", 422, ClassPermanent, ScopeRequest},
	{"account_configuration_error", 422, ClassPermanent, ScopeRequest},
	// A 422 says the provider did not act; these two say why is passing (the provider, or the
	// account's realtime client, is not reachable yet): retried like a 503.
	{"provider_unreachable", 422, ClassTransient, ScopeRequest},
	{"realtime_client_not_initialized", 422, ClassTransient, ScopeRequest},
	// 429.
	{"too_many_requests", 429, ClassRateLimited, ScopeRequest},
	// 500: may come after WhatsApp took the message (see classifyStatus).
	{"unexpected_error", 500, ClassUnknownOutcome, ScopeRequest},
	{"provider_error", 500, ClassUnknownOutcome, ScopeRequest},
	{"authentication_intent_error", 500, ClassUnknownOutcome, ScopeRequest},
	// 501.
	{"feature_not_implemented", 501, ClassPermanent, ScopeRequest},
	// 503: nothing was taken. The first two say the account's session is not running.
	{"no_client_session", 503, ClassTransient, ScopeAccount},
	{"no_channel", 503, ClassTransient, ScopeAccount},
	{"no_handler", 503, ClassTransient, ScopeRequest},
	{"network_down", 503, ClassTransient, ScopeRequest},
	{"service_unavailable", 503, ClassTransient, ScopeRequest},
	// 504.
	{"request_timeout", 504, ClassUnknownOutcome, ScopeRequest},
}

// Vocabulary returns a copy of the documented problem types, in table order.
func Vocabulary() []ProblemType { return append([]ProblemType(nil), vocabulary...) }

// LookupProblem returns the documented problem type of a slug ("disconnected_account" or
// "errors/disconnected_account").
func LookupProblem(slug string) (ProblemType, bool) {
	slug = Problem{Type: slug}.Slug()
	for _, t := range vocabulary {
		if t.Slug == slug {
			return t, true
		}
	}
	return ProblemType{}, false
}

// ScopeOf returns the scope of a refused call: the documented scope of its problem type, and
// ScopeRequest for anything else (an undocumented slug, a transport error, no answer).
func ScopeOf(err error) Scope {
	if t, ok := LookupProblem(SlugOf(err)); ok && t.Status == StatusOf(err) {
		return t.Scope
	}
	return ScopeRequest
}

// IsAccountLevel reports whether the problem slug is about the account or its session (the
// answers that feed the account breaker).
func IsAccountLevel(slug string) bool {
	t, ok := LookupProblem(slug)
	return ok && t.Scope == ScopeAccount
}

// classifyProblem is the class of an error answer: the vocabulary's when the problem type is
// documented with this status, else classifyStatus's. A read never gets ClassUnknownOutcome.
func classifyProblem(op string, status int, p *Problem) Class {
	if p != nil {
		if t, ok := LookupProblem(p.Slug()); ok && t.Status == status {
			if t.Class == ClassUnknownOutcome && !IsSending(op) {
				return ClassTransient
			}
			return t.Class
		}
	}
	return classifyStatus(op, status)
}

// Errors the client makes itself, wrapped in an *Error (test with errors.Is).
var (
	// ErrInvalidArgument: the call was refused before anything went out (empty id, limit
	// out of range...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrDecode: a response could not be decoded.
	ErrDecode = errors.New("cannot decode response")
	// ErrBodyTooLarge: a response body exceeded the client's cap.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrStatus: the provider answered with an error status; Error.Status and Error.Problem
	// say which.
	ErrStatus = errors.New("error status")
)

// Error is the error of every failed call. Its message names the operation, the method and
// path, the status and problem slug, never a secret nor message text (the problem's Detail,
// which may quote the request, is kept in Problem only).
type Error struct {
	Op         string   // operation name, e.g. "chats_messages_send" (see the Op constants)
	Method     string   // HTTP method
	Path       string   // escaped request path, e.g. "/api/v1/chats/abc/messages"
	Status     int      // HTTP status, 0 when no response was received
	Class      Class    // what the caller may do next
	Problem    *Problem // the decoded problem-details body, nil when there was none
	RetryAfter time.Duration
	Err        error // the cause: ErrStatus, ErrInvalidArgument, a network or context error...
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider: ")
	b.WriteString(e.Op)
	if e.Method != "" {
		b.WriteString(" " + e.Method + " " + e.Path)
	}
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		if e.Problem != nil {
			if s := e.Problem.Slug(); s != "" {
				b.WriteString(" " + s)
			}
			if e.Problem.Title != "" {
				b.WriteString(" (" + e.Problem.Title + ")")
			}
		}
		if e.Err != nil && !errors.Is(e.Err, ErrStatus) {
			b.WriteString(": " + e.Err.Error())
		}
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	b.WriteString(" [" + e.Class.String() + "]")
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of any error. For an *Error (anywhere in the chain) it is its
// Class. An error the client did not make cannot have sent anything: context cancellation or
// deadline and network timeouts are transient, anything else is permanent. ClassOf(nil) is
// ClassPermanent and means nothing; check the error first.
func ClassOf(err error) Class {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Class
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassTransient
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTransient
	}
	return ClassPermanent
}

// SlugOf returns the problem slug of err ("disconnected_account"), or "" when err carries
// no problem-details body.
func SlugOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Problem != nil {
		return e.Problem.Slug()
	}
	return ""
}

// StatusOf returns the HTTP status of err, or 0 when no response was received.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// RetryAfterOf returns how long the provider asked us to wait (the Retry-After header), or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// IsNotImplemented reports whether the provider answered that it does not implement the
// call (501 errors/feature_not_implemented), as it does for accounts_sync on WhatsApp.
func IsNotImplemented(err error) bool {
	return SlugOf(err) == SlugFeatureNotImplemented || StatusOf(err) == http.StatusNotImplemented
}

// classifyStatus maps an HTTP error status to a class. It is the one table the classification
// tests cover row by row.
//
// Choices beyond the provider's documented rules (docs/PROVIDER-API.md): 501 is permanent (retrying an unimplemented
// feature cannot help); for sending calls 500 and 502 are unknown outcomes like 504: a 500
// (errors/unexpected_error, errors/provider_error) may come after WhatsApp already took the
// message, and a gateway that lost the upstream's answer cannot tell whether it acted, so
// the worker reconciles against the chat before any retry. 503 (network_down,
// service_unavailable) says the provider did not take the request: transient. Redirects are
// never followed, so 3xx (and any other unexpected status) is permanent.
func classifyStatus(op string, status int) Class {
	switch {
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusNotImplemented:
		return ClassPermanent
	case status == http.StatusGatewayTimeout || status == http.StatusBadGateway || status == http.StatusInternalServerError:
		if IsSending(op) {
			return ClassUnknownOutcome
		}
		return ClassTransient
	case status >= 500 && status <= 599:
		return ClassTransient
	default:
		return ClassPermanent
	}
}

// classifyTransport maps a failure without a response (network error, timeout, context
// cancellation). written says whether the whole request reached the wire: once it has, a
// sending call may have been acted on.
func classifyTransport(op string, written bool) Class {
	if written && IsSending(op) {
		return ClassUnknownOutcome
	}
	return ClassTransient
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date. Garbage and
// past dates give 0 (no hint); absurd values are capped so that a broken header cannot park
// a send for years.
func parseRetryAfter(v string, now time.Time) time.Duration {
	const maxRetryAfter = 24 * time.Hour
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// attachmentError is the failure of an attachment's source (Open or Read) while a send was
// being streamed; the request was cut short, so the provider cannot have acted on it.
type attachmentError struct {
	field, filename string
	err             error
}

func (e *attachmentError) Error() string {
	return fmt.Sprintf("attachment %s %q: %v", e.field, e.filename, e.err)
}

func (e *attachmentError) Unwrap() error { return e.err }
