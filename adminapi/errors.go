package adminapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// envelope is the one error shape of the API:
// {"error":{"code","message","fields":[{"field","code","message"}]}}.
type envelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string             `json:"code"`
	Message string             `json:"message"`
	Fields  []tasks.FieldError `json:"fields,omitempty"`
}

// apiError is an error already decided at the edge (auth, body checks,
// routing) or the result of classify.
type apiError struct {
	status     int
	code       string
	message    string
	fields     []tasks.FieldError
	retryAfter time.Duration
}

func (e apiError) Error() string { return e.code + ": " + e.message }

func (e apiError) body() *errorBody {
	return &errorBody{Code: e.code, Message: e.message, Fields: e.fields}
}

// domainErrors is the table from domain errors (errors.Is) to HTTP.
var domainErrors = []struct {
	err    error
	status int
	code   string
}{
	{ledger.ErrNotFound, http.StatusNotFound, "not_found"},
	{ledger.ErrConflict, http.StatusConflict, "conflict"},
	{ledger.ErrDigestMismatch, http.StatusConflict, "digest_mismatch"},
	{ledger.ErrSelfApproval, http.StatusForbidden, "self_approval"},
	{ledger.ErrNotPending, http.StatusConflict, "not_pending"},
	{ledger.ErrTooLate, http.StatusConflict, "too_late"},
	{ledger.ErrFinal, http.StatusConflict, "final"},
	{ledger.ErrStaleAttempt, http.StatusConflict, "conflict"},
	{ledger.ErrBadQuery, http.StatusBadRequest, "invalid_request"},
	{ledger.ErrNotInReview, http.StatusConflict, "not_in_review"},
	{ledger.ErrMessageClaimed, http.StatusConflict, "message_claimed"},
	// The decision is written on the master but not yet on the replicas SENDWORKER_WAIT_REPLICAS
	// asks for: not a 200 (a failover could still lose it); GET the send to see where it stands.
	{ledger.ErrNotReplicated, http.StatusServiceUnavailable, "not_replicated"},
}

// classify maps any error of a handler to its answer. Unknown errors are 500
// with a generic message (the cause goes to the log, not to the caller);
// Redis or network trouble is 503.
func classify(err error) apiError {
	var (
		ae  apiError
		ve  *tasks.ValidationError
		pe  *provider.Error
		mbe *http.MaxBytesError
		ne  net.Error
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", message: "request body exceeds " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	case errors.As(err, &ve):
		// tasks.DecodeRequest reports its own size cap as a body field.
		if len(ve.Fields) == 1 && ve.Fields[0].Field == "body" && ve.Fields[0].Code == "too_large" {
			return apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", message: ve.Fields[0].Message}
		}
		return apiError{status: http.StatusBadRequest, code: "invalid_request", message: ve.Error(), fields: ve.Fields}
	case errors.As(err, &pe):
		return classifyProvider(pe)
	case errors.Is(err, ledger.ErrBadCursor):
		return apiError{status: http.StatusBadRequest, code: "invalid_request", message: err.Error(),
			fields: []tasks.FieldError{{Field: "cursor", Code: "invalid", Message: "not a cursor from a previous page"}}}
	}
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return apiError{status: d.status, code: d.code, message: err.Error()}
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.As(err, &ne):
		return apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "temporarily unavailable, try again"}
	}
	return apiError{status: http.StatusInternalServerError, code: "internal", message: "internal error"}
}

// classifyProvider maps a provider look-up failure: the caller's mistake is
// 400, an unknown account or chat 404, a provider asking us to slow down 503
// with Retry-After, a look-up not made because the global request rate could
// not be waited for 503, anything else the provider did wrong 502.
func classifyProvider(pe *provider.Error) apiError {
	msg := pe.Error() // names op, path, status and slug; never secrets or message text
	switch {
	case errors.Is(pe, provider.ErrInvalidArgument):
		return apiError{status: http.StatusBadRequest, code: "invalid_request", message: msg}
	case pe.Status == http.StatusNotFound || provider.SlugOf(pe) == provider.SlugResourceNotFound:
		return apiError{status: http.StatusNotFound, code: "not_found", message: msg}
	case pe.Class == provider.ClassRateLimited:
		return apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: msg, retryAfter: pe.RetryAfter}
	case errors.As(pe, new(*provider.PaceError)):
		// The look-up was not made: our own global request rate could not be waited for
		// (Redis unavailable). Nothing the provider did.
		return apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: msg}
	}
	return apiError{status: http.StatusBadGateway, code: "provider_error", message: msg}
}

func writeError(w http.ResponseWriter, e apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.status, envelope{Error: *e.body()})
}
