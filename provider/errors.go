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

// Slugs of the problem types the provider documents. The list is open: new slugs appear
// without notice, so code that switches on slugs needs a default branch.
const (
	SlugInvalidParameters         = "invalid_parameters"
	SlugTooManyCharacters         = "too_many_characters"
	SlugDisconnectedAccount       = "disconnected_account"
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
	SlugCannotResendYet           = "cannot_resend_yet"
	SlugTooManyRequests           = "too_many_requests"
	SlugUnexpectedError           = "unexpected_error"
	SlugProviderError             = "provider_error"
	SlugFeatureNotImplemented     = "feature_not_implemented"
	SlugNetworkDown               = "network_down"
	SlugServiceUnavailable        = "service_unavailable"
	SlugRequestTimeout            = "request_timeout"
)

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
