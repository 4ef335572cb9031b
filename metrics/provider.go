package metrics

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/sendworker/sendworker/provider"
)

// ObserveProvider records one provider request, as the provider client reports it (plug it in
// as provider.Options.Observer): its duration in provider_request_duration_seconds, labelled
// with its operation and status (the HTTP status code, or timeout or error when no answer
// came), and, when it failed, one count in provider_errors_total by operation and class. The
// operation is the client's own (provider.Error.Op), never anything taken from a URL.
func (m *Metrics) ObserveProvider(x provider.Exchange) {
	if m == nil {
		return
	}
	op := x.Op
	if !providerOps[op] {
		op = other
	}
	status := "error"
	switch {
	case x.Status != 0:
		status = strconv.Itoa(x.Status)
	case x.Err != nil && isTimeout(x.Err):
		status = "timeout"
	}
	m.providerLatency.WithLabelValues(op, status).Observe(seconds(x.Duration))
	if x.Err != nil {
		m.providerError(op, x.Err.Class.String())
	}
}

// providerError counts a failed provider request: op is a provider operation
// (provider.Error.Op), class a provider.Class as a string. Values outside those sets count as
// "other".
func (m *Metrics) providerError(op string, class string) {
	if !providerOps[op] {
		op = other
	}
	if !providerClasses[class] {
		class = other
	}
	m.providerErrors.WithLabelValues(op, class).Inc()
}

// isTimeout reports whether a request failed because a deadline passed: the provider client's
// per-request timeout (or the caller's deadline), or a network timeout of the transport.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
