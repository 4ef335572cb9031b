package wasim

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Operation names, as in docs/PROVIDER-API.md and Delivery.Operation.
const (
	opAccountsGet        = "accounts_get"
	opAccountsSync       = "accounts_sync"
	opChatsList          = "chats_list"
	opChatsGet           = "chats_get"
	opChatsMessagesList  = "chats_messages_list"
	opChatsAttendeesList = "chats_attendees_list"
	opChatsMessagesSend  = "chats_messages_send"
	opChatsCreate        = "chats_create"
	opMessagesReaction   = "messages_reaction"
	opMessagesEdit       = "messages_edit"
	opMessagesDelete     = "messages_delete"
	opUnknown            = "unknown"
	opOAuthToken         = "oauth_token"
)

// isSending reports whether op is visible to the contact: those are the calls recorded as
// Deliveries and the only ones the 504 and accept-then-drop faults apply to.
func isSending(op string) bool {
	switch op {
	case opChatsMessagesSend, opChatsCreate, opMessagesReaction, opMessagesEdit, opMessagesDelete:
		return true
	}
	return false
}

// problem is a provider error, rendered as problem details.
type problem struct {
	status int
	slug   string // without the "errors/" prefix
	detail string
}

func (p *problem) Error() string { return fmt.Sprintf("%d errors/%s: %s", p.status, p.slug, p.detail) }

func newProblem(status int, slug, format string, args ...any) *problem {
	return &problem{status: status, slug: slug, detail: fmt.Sprintf(format, args...)}
}

func problemTitle(slug string) string {
	switch slug {
	case "invalid_parameters":
		return "Invalid parameters"
	case "too_many_characters":
		return "Too many characters"
	case "missing_credentials":
		return "Missing credentials"
	case "invalid_credentials":
		return "Invalid credentials"
	case "disconnected_account":
		return "Disconnected account"
	case "account_mismatch":
		return "Account mismatch"
	case "account_restricted":
		return "Account restricted"
	case "expired_credentials":
		return "Expired credentials"
	case "disconnected_feature":
		return "Disconnected feature"
	case "wrong_account":
		return "Wrong account"
	case "multiple_sessions":
		return "Multiple sessions"
	case "no_client_session":
		return "No client session"
	case "no_channel":
		return "No channel"
	case "resource_not_found":
		return "Resource not found"
	case "unsupported_media_type":
		return "Unsupported media type"
	case "content_too_large":
		return "Content too large"
	case "cant_send_message":
		return "Cannot send message"
	case "invalid_action":
		return "Invalid action"
	case "invalid_recipient":
		return "Invalid recipient"
	case "too_many_requests":
		return "Too many requests"
	case "unexpected_error":
		return "Unexpected error"
	case "feature_not_implemented":
		return "Feature not implemented"
	case "service_unavailable":
		return "Service unavailable"
	case "request_timeout":
		return "Request timeout"
	}
	return "Error"
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	writeJSON(w, p.status, wireProblem{
		Title:    problemTitle(p.slug),
		Detail:   p.detail,
		Instance: r.URL.Path,
		Type:     "errors/" + p.slug,
		Status:   p.status,
	})
}

// ServeHTTP serves the provider API under /api/v1, the OAuth2 token endpoint at /oauth/token and
// the simulator's control endpoints under /_sim/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/oauth/token":
		s.serveToken(w, r)
	case strings.HasPrefix(path, "/_sim/"):
		s.serveControl(w, r)
	case path == "/api/v1" || strings.HasPrefix(path, "/api/v1/"):
		s.serveAPI(w, r)
	default:
		writeProblem(w, r, newProblem(http.StatusNotFound, "resource_not_found", "no route %s %s", r.Method, path))
	}
}

// matchRoute maps a request to an operation and its path id. ok is false for unknown routes,
// including a known path with the wrong method: the provider answers those 404.
func matchRoute(method, escapedPath string) (op, id string, ok bool) {
	rest := strings.TrimPrefix(escapedPath, "/api/v1")
	segs := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil || (i == 1 && v == "") {
			return "", "", false
		}
		segs[i] = v
	}
	if len(segs) >= 2 {
		id = segs[1]
	}
	switch {
	case len(segs) == 2 && segs[0] == "accounts" && method == http.MethodGet:
		return opAccountsGet, id, true
	case len(segs) == 3 && segs[0] == "accounts" && segs[2] == "sync" && method == http.MethodGet:
		return opAccountsSync, id, true
	case len(segs) == 1 && segs[0] == "chats" && method == http.MethodGet:
		return opChatsList, "", true
	case len(segs) == 1 && segs[0] == "chats" && method == http.MethodPost:
		return opChatsCreate, "", true
	case len(segs) == 2 && segs[0] == "chats" && method == http.MethodGet:
		return opChatsGet, id, true
	case len(segs) == 3 && segs[0] == "chats" && segs[2] == "messages" && method == http.MethodGet:
		return opChatsMessagesList, id, true
	case len(segs) == 3 && segs[0] == "chats" && segs[2] == "messages" && method == http.MethodPost:
		return opChatsMessagesSend, id, true
	case len(segs) == 3 && segs[0] == "chats" && segs[2] == "attendees" && method == http.MethodGet:
		return opChatsAttendeesList, id, true
	case len(segs) == 3 && segs[0] == "messages" && segs[2] == "reaction" && method == http.MethodPost:
		return opMessagesReaction, id, true
	case len(segs) == 2 && segs[0] == "messages" && method == http.MethodPatch:
		return opMessagesEdit, id, true
	case len(segs) == 2 && segs[0] == "messages" && method == http.MethodDelete:
		return opMessagesDelete, id, true
	}
	return "", "", false
}

// draw is what fault injection decided for one request.
type draw struct {
	kind       fault
	latency    time.Duration
	retryAfter string
}

// drawFault takes the one random draw of a request, plus its latency.
func (s *Sim) drawFault(sending bool) draw {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	d := draw{kind: f.pick(s.rng.Float64(), sending), latency: f.LatencyMin, retryAfter: f.retryAfterSeconds()}
	if f.LatencyMax > f.LatencyMin {
		d.latency += time.Duration(s.rng.Int64N(int64(f.LatencyMax-f.LatencyMin) + 1))
	}
	return d
}

// problem returns the error an injected fault answers with, or nil.
func (d draw) problem() *problem {
	switch d.kind {
	case fault500:
		return newProblem(http.StatusInternalServerError, "unexpected_error", "injected fault: unexpected error")
	case fault503:
		return newProblem(http.StatusServiceUnavailable, "service_unavailable", "injected fault: service unavailable")
	case fault429:
		return newProblem(http.StatusTooManyRequests, "too_many_requests", "injected fault: too many requests")
	case fault504:
		return newProblem(http.StatusGatewayTimeout, "request_timeout", "injected fault: request timeout")
	}
	return nil
}

// writeFault writes an injected error, with Retry-After on a 429 when configured.
func writeFault(w http.ResponseWriter, r *http.Request, d draw) {
	if d.kind == fault429 && d.retryAfter != "" {
		w.Header().Set("Retry-After", d.retryAfter)
	}
	writeProblem(w, r, d.problem())
}

// sleep waits d or until ctx ends; it reports whether the full wait happened.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	// The provider's own clock, as a client could use it to compare with its own.
	w.Header().Set("Date", s.ProviderNow().Format(http.TimeFormat))
	op, id, ok := matchRoute(r.Method, r.URL.EscapedPath())
	if !ok {
		op = opUnknown
	}
	if p := s.authenticate(r); p != nil {
		if isSending(op) {
			s.recordRejected(op, id, p)
		} else {
			s.countRequest(op, "rejected_"+p.slug)
		}
		writeProblem(w, r, p)
		return
	}
	if !ok {
		s.countRequest(op, "rejected_resource_not_found")
		writeProblem(w, r, newProblem(http.StatusNotFound, "resource_not_found", "no route %s %s", r.Method, r.URL.Path))
		return
	}
	d := s.drawFault(isSending(op))
	if !sleep(r.Context(), d.latency) {
		return // the client gave up during the injected latency
	}
	if isSending(op) {
		s.serveSending(w, r, op, id, d)
		return
	}
	if d.kind.beforeState() {
		s.countRequest(op, fmt.Sprintf("error_%d", d.problem().status))
		writeFault(w, r, d)
		return
	}
	body, p := s.serveRead(op, id, r.URL.Query())
	if p != nil {
		s.countRequest(op, "rejected_"+p.slug)
		writeProblem(w, r, p)
		return
	}
	s.countRequest(op, "ok")
	writeJSON(w, http.StatusOK, body)
}

func (s *Sim) countRequest(op, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(op, outcome)
}

// authenticate applies the configured auth: an API key, OAuth2 bearer tokens, both, or none.
func (s *Sim) authenticate(r *http.Request) *problem {
	oauth := len(s.oauthClients) > 0 || len(s.refreshTokens) > 0
	if s.apiKey == "" && !oauth {
		return nil // development mode: nothing configured, nothing required
	}
	if key := r.Header.Get("X-API-KEY"); key != "" {
		if s.apiKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.apiKey)) == 1 {
			return nil
		}
		return newProblem(http.StatusUnauthorized, "invalid_credentials", "the API key is not valid")
	}
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, token, _ := strings.Cut(authz, " ")
		if !oauth || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return newProblem(http.StatusUnauthorized, "invalid_credentials", "the Authorization header is not an accepted bearer token")
		}
		s.mu.Lock()
		expiry, known := s.tokens[token]
		now := s.now()
		s.mu.Unlock()
		if !known || !now.Before(expiry) {
			return newProblem(http.StatusUnauthorized, "invalid_credentials", "the access token is unknown or expired")
		}
		return nil
	}
	return newProblem(http.StatusUnauthorized, "missing_credentials", "send an X-API-KEY header or an Authorization bearer token")
}
