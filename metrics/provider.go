package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendworker/sendworker/provider"
)

// instrumentedTransport observes each round trip in the provider latency
// histogram. It never changes, retries or reads a request or a response.
type instrumentedTransport struct {
	next    http.RoundTripper
	latency *prometheus.HistogramVec
}

func (t *instrumentedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := routeOperation(req.Method, req.URL.EscapedPath())
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	elapsed := time.Since(start)
	status := "error"
	switch {
	case err == nil:
		status = strconv.Itoa(resp.StatusCode)
	case isTimeout(req.Context(), err):
		status = "timeout"
	}
	t.latency.WithLabelValues(op, status).Observe(elapsed.Seconds())
	return resp, err
}

// isTimeout reports whether a round trip failed because a deadline passed:
// the request's context (the provider client's per-request timeout) or a
// network timeout of the transport.
func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// routeOperation names the provider operation of a request from its method
// and escaped path (ids are one segment each: a "/" inside an id is %2F), or
// "other". Only the segments after /api/v1 count; the label is always one of
// the 11 operation names or "other", never anything taken from the path.
func routeOperation(method, escapedPath string) string {
	segs := strings.Split(escapedPath, "/")
	// The base URL may put a path of its own (even one containing api/v1)
	// before the API's /api/v1: the first occurrence followed by a known
	// route wins.
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "api" && segs[i+1] == "v1" {
			if op := matchRoute(method, segs[i+2:]); op != other {
				return op
			}
		}
	}
	return other
}

// matchRoute maps the path segments below /api/v1 to an operation:
//
//	GET    /accounts/{id}             accounts_get
//	GET    /accounts/{id}/sync        accounts_sync
//	GET    /chats                     chats_list
//	POST   /chats                     chats_create
//	GET    /chats/{id}                chats_get
//	GET    /chats/{id}/messages       chats_messages_list
//	POST   /chats/{id}/messages       chats_messages_send
//	GET    /chats/{id}/attendees      chats_attendees_list
//	POST   /messages/{id}/reaction(s) messages_reaction
//	PATCH  /messages/{id}             messages_edit
//	DELETE /messages/{id}             messages_delete
//
// Any other method on these paths is another API call, hence "other".
func matchRoute(method string, s []string) string {
	// An empty id segment ("/chats//messages") names no resource.
	id := func(i int) bool { return len(s) > i && s[i] != "" }
	switch {
	case len(s) == 2 && s[0] == "accounts" && id(1) && method == http.MethodGet:
		return provider.OpAccountsGet
	case len(s) == 3 && s[0] == "accounts" && id(1) && s[2] == "sync" && method == http.MethodGet:
		return provider.OpAccountsSync
	case len(s) == 1 && s[0] == "chats" && method == http.MethodGet:
		return provider.OpChatsList
	case len(s) == 1 && s[0] == "chats" && method == http.MethodPost:
		return provider.OpChatsCreate
	case len(s) == 2 && s[0] == "chats" && id(1) && method == http.MethodGet:
		return provider.OpChatsGet
	case len(s) == 3 && s[0] == "chats" && id(1) && s[2] == "messages" && method == http.MethodGet:
		return provider.OpChatsMessagesList
	case len(s) == 3 && s[0] == "chats" && id(1) && s[2] == "messages" && method == http.MethodPost:
		return provider.OpChatsMessagesSend
	case len(s) == 3 && s[0] == "chats" && id(1) && s[2] == "attendees" && method == http.MethodGet:
		return provider.OpChatsAttendeesList
	case len(s) == 3 && s[0] == "messages" && id(1) && (s[2] == "reaction" || s[2] == "reactions") && method == http.MethodPost:
		return provider.OpMessagesReaction
	case len(s) == 2 && s[0] == "messages" && id(1) && method == http.MethodPatch:
		return provider.OpMessagesEdit
	case len(s) == 2 && s[0] == "messages" && id(1) && method == http.MethodDelete:
		return provider.OpMessagesDelete
	}
	return other
}
