// Package adminapi is the admin HTTP API of sendworker (docs/PRODUCT.md, "Admin
// HTTP API"; wire contract in docs/CONTRACTS.md): the Sequencer enqueues sends,
// approvers approve or reject them, admins pause and resume, everyone reads
// records, stats, an account's send forecast (why and until when its sends
// wait) and the provider's view of accounts and chats.
//
// It is an edge, not a brain: it authenticates the caller (bearer token →
// identity and roles, never from the body), checks the route's role, decodes
// and bounds the input strictly, calls the approval Service, and maps domain
// errors to HTTP in one table (errors.go). It holds no business logic, and
// logs neither tokens nor message text.
package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/provider"
)

// Roles a token may carry. They are independent: admin does not imply
// approver (separation of duties); a token lists every role it needs.
const (
	RoleScheduler = "scheduler" // enqueue and cancel sends
	RoleApprover  = "approver"  // approve and reject sends
	RoleAdmin     = "admin"     // pause and resume, opt-outs, cancel
)

// Limits of the API.
const (
	DefaultMaxBodyBytes = 1 << 20
	// MaxBatch bounds the items of one bulk request.
	MaxBatch = 500
	// requestTimeout bounds the work of one request (Redis, provider look-ups).
	requestTimeout = 30 * time.Second
	readyTimeout   = 3 * time.Second
)

// Token maps a bearer token to an identity and its roles.
type Token struct {
	Identity string
	Roles    []string
	Token    string
	// Accounts limits the identity to these accounts (scope.go); nil = all.
	Accounts []string
}

// ProviderReader is the read-only part of the provider client that the
// look-up routes proxy (provider.Client implements it).
type ProviderReader interface {
	GetAccount(ctx context.Context, accountID string) (*provider.Account, error)
	ListChats(ctx context.Context, p provider.ListChatsParams) (*provider.ChatList, error)
	ListMessages(ctx context.Context, chatID string, p provider.ListMessagesParams) (*provider.MessageList, error)
	ListAttendees(ctx context.Context, chatID string, p provider.ListAttendeesParams) (*provider.AttendeeList, error)
}

// Options configures the API.
type Options struct {
	// Tokens are the accepted bearer tokens. Entries with an empty Token are ignored.
	Tokens []Token
	// TokenStore, when set, replaces Tokens: the daemon swaps its tokens at run time (reload of
	// the tokens file) and every request authenticates against the set in force.
	TokenStore *TokenStore
	// MaxBodyBytes caps a request body (413 above it). Default 1 MiB.
	MaxBodyBytes int64
	// Provider serves the /v1/provider look-ups; nil answers them 503.
	Provider ProviderReader
	// Forecaster serves GET /v1/accounts/{account_id}/forecast (the rate
	// limiter, *ratelimit.Limiter); nil answers it 503.
	Forecaster Forecaster
	// Inbound serves GET /v1/provider/events (the processed provider events); nil answers it 503.
	Inbound InboundLog
	// Ready backs /readyz (nil: always ready).
	Ready func(ctx context.Context) error
	// Metrics serves /metrics (nil: 404).
	Metrics http.Handler
	Logger  *zap.Logger
	// Now is the clock (request durations in logs); default time.Now.
	Now func() time.Time
}

// caller is the authenticated identity of a request.
type caller struct {
	identity string
	roles    []string
	scope    Scope
}

// handler answers one route: a status and a JSON body, or an error that the
// error table turns into the envelope.
type handler func(r *http.Request, c *caller, body []byte) (int, any, error)

// bodyKind says whether a route reads a JSON body.
type bodyKind int

const (
	bodyNone     bodyKind = iota // no body expected (an empty JSON object is tolerated)
	bodyOptional                 // a JSON body may be sent
	bodyRequired                 // a JSON body must be sent
)

// route is one line of the route table. roles nil = any authenticated caller.
type route struct {
	pattern string
	public  bool
	roles   []string
	body    bodyKind
	handle  handler
	raw     http.Handler // public routes served as they are (/metrics)
}

type api struct {
	svc      *approval.Service
	opts     Options
	log      *zap.Logger
	mux      *http.ServeMux
	tokens   *TokenStore
	provider ProviderReader
	readyLog *logthrottle.Throttle
}

// New returns the admin API over svc.
func New(svc *approval.Service, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &api{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), provider: opts.Provider,
		readyLog: logthrottle.New(0, opts.Now)}
	a.tokens = opts.TokenStore
	if a.tokens == nil {
		a.tokens = NewTokenStore(opts.Tokens)
	}
	for _, rt := range a.routes() {
		a.mux.Handle(rt.pattern, a.wrap(rt))
	}
	return a
}

// routes is the route table of CONTRACTS.md.
func (a *api) routes() []route {
	anyone := []string(nil)
	sched := []string{RoleScheduler}
	appr := []string{RoleApprover}
	admin := []string{RoleAdmin}
	return []route{
		{pattern: "POST /v1/sends", roles: sched, body: bodyRequired, handle: a.enqueue},
		{pattern: "POST /v1/sends:batch", roles: sched, body: bodyRequired, handle: a.enqueueBatch},
		{pattern: "GET /v1/sends", roles: anyone, handle: a.list},
		{pattern: "GET /v1/sends/{send_id}", roles: anyone, handle: a.get},
		{pattern: "POST /v1/sends/{send_id}/approve", roles: appr, body: bodyRequired, handle: a.approve},
		{pattern: "POST /v1/sends:approve", roles: appr, body: bodyRequired, handle: a.approveBatch},
		{pattern: "POST /v1/sends/{send_id}/reject", roles: appr, body: bodyRequired, handle: a.reject},
		{pattern: "POST /v1/sends/{send_id}/revise", roles: appr, body: bodyRequired, handle: a.revise},
		{pattern: "POST /v1/sends/{send_id}/resolve", roles: admin, body: bodyRequired, handle: a.resolve},
		{pattern: "POST /v1/sends:reject", roles: appr, body: bodyRequired, handle: a.rejectBatch},
		{pattern: "POST /v1/sends/{send_id}/cancel", roles: []string{RoleScheduler, RoleAdmin}, body: bodyOptional, handle: a.cancel},
		{pattern: "POST /v1/pause", roles: admin, handle: a.pause(true, false)},
		{pattern: "POST /v1/resume", roles: admin, handle: a.pause(false, false)},
		{pattern: "POST /v1/accounts/{account_id}/pause", roles: admin, handle: a.pause(true, true)},
		{pattern: "POST /v1/accounts/{account_id}/resume", roles: admin, handle: a.pause(false, true)},
		{pattern: "GET /v1/accounts/{account_id}/forecast", roles: anyone, handle: a.forecast},
		{pattern: "GET /v1/pause", roles: anyone, handle: a.pauseState},
		{pattern: "GET /v1/optouts", roles: anyone, handle: a.optOuts},
		{pattern: "POST /v1/optouts", roles: admin, body: bodyRequired, handle: a.addOptOut},
		{pattern: "DELETE /v1/optouts/{contact_id}", roles: admin, handle: a.removeOptOut},
		{pattern: "GET /v1/stats", roles: anyone, handle: a.stats},
		{pattern: "GET /v1/provider/events", roles: anyone, handle: a.inboundEvents},
		{pattern: "GET /v1/audit", roles: []string{RoleApprover, RoleAdmin}, handle: a.audit},
		{pattern: "GET /v1/provider/accounts/{account_id}", roles: anyone, handle: a.providerAccount},
		{pattern: "GET /v1/provider/chats", roles: anyone, handle: a.providerChats},
		{pattern: "GET /v1/provider/chats/{chat_id}/messages", roles: anyone, handle: a.providerMessages},
		{pattern: "GET /v1/provider/chats/{chat_id}/attendees", roles: anyone, handle: a.providerAttendees},
		{pattern: "GET /healthz", public: true, handle: a.healthz},
		{pattern: "GET /readyz", public: true, handle: a.readyz},
		{pattern: "GET /metrics", public: true, raw: a.opts.Metrics, handle: notFoundHandler},
	}
}

// ServeHTTP answers unknown routes and wrong methods in the JSON envelope
// (the mux's own answers are plain text) and hands the rest to the mux.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, pattern := a.mux.Handler(r); pattern == "" {
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: r.Method + " is not allowed on " + r.URL.Path})
			return
		}
		writeError(w, apiError{status: http.StatusNotFound, code: "not_found", message: "no such route: " + r.Method + " " + r.URL.Path})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// statusProbe records what the mux's not-found / not-allowed handler says.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(s int)           { p.status = s }

// wrap applies, in order: panic recovery, authentication, the role check,
// the body checks, a deadline, the handler, the error table and one log line.
func (a *api) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.opts.Now()
		status, who := 0, ""
		defer func() {
			if p := recover(); p != nil {
				// Never crash on input: answer 500 and keep the stack out of the answer.
				a.log.Error("panic in admin API handler", zap.String("route", rt.pattern), zap.Any("panic", p), zap.Stack("stack"))
				status = http.StatusInternalServerError
				writeError(w, apiError{status: status, code: "internal", message: "internal error"})
			}
			a.log.Debug("admin api", zap.String("route", rt.pattern), zap.Int("status", status),
				zap.String("by", who), zap.Duration("took", a.opts.Now().Sub(start)))
		}()

		if rt.raw != nil {
			status = http.StatusOK
			rt.raw.ServeHTTP(w, r)
			return
		}
		var c *caller
		if !rt.public {
			c = a.authenticate(r)
			if c == nil {
				status = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="sendworker"`)
				writeError(w, apiError{status: status, code: "unauthorized", message: "a valid bearer token is required"})
				return
			}
			who = c.identity
			if rt.roles != nil && !c.hasAny(rt.roles) {
				status = http.StatusForbidden
				writeError(w, apiError{status: status, code: "forbidden", message: "this route needs the role " + strings.Join(rt.roles, " or ")})
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)

		var (
			answer any
			data   []byte
		)
		data, err := a.readBody(w, r, rt.body)
		if err == nil {
			status, answer, err = rt.handle(r, c, data)
		}
		if err != nil {
			e := classify(err)
			status = e.status
			// A not-ready /readyz is logged by readyz itself, throttled: probes ask every few seconds.
			if status >= 500 && rt.pattern != "GET /readyz" {
				a.log.Error("admin api error", zap.String("route", rt.pattern), zap.String("by", who), zap.Int("status", status), zap.Error(err))
			}
			writeError(w, e)
			return
		}
		writeJSON(w, status, answer)
	})
}

// authenticate finds the caller of the bearer token. The presented token is
// hashed and compared in constant time with every configured token's hash,
// without stopping at a match, so the answer time says nothing about which
// token (or how much of one) matched.
func (a *api) authenticate(r *http.Request) *caller {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(scheme):])))
	tt := a.tokens.table.Load() // one set for the whole request, whatever a reload does meanwhile
	found, idx := 0, 0
	for i := range tt.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], tt.hashes[i][:])
		first := eq &^ found
		idx = subtle.ConstantTimeSelect(first, i, idx)
		found |= eq
	}
	if found == 0 {
		return nil
	}
	return &tt.callers[idx]
}

// TokenStore holds the accepted tokens and lets them be replaced atomically while requests run:
// a request sees the old set or the new one, never a mix.
type TokenStore struct {
	table atomic.Pointer[tokenTable]
}

// tokenTable is one parsed set of tokens: the hash of each token and its caller, by index.
type tokenTable struct {
	hashes  [][sha256.Size]byte
	callers []caller
}

// NewTokenStore returns a store holding tokens (entries with an empty Token are ignored).
func NewTokenStore(tokens []Token) *TokenStore {
	s := &TokenStore{}
	s.Set(tokens)
	return s
}

// Set replaces the accepted tokens, atomically.
func (s *TokenStore) Set(tokens []Token) {
	tt := &tokenTable{}
	for _, t := range tokens {
		if t.Token == "" {
			continue
		}
		tt.hashes = append(tt.hashes, sha256.Sum256([]byte(t.Token)))
		tt.callers = append(tt.callers, caller{identity: t.Identity, roles: slices.Clone(t.Roles), scope: Scope(slices.Clone(t.Accounts))})
	}
	s.table.Store(tt)
}

func (c *caller) hasAny(roles []string) bool {
	for _, r := range roles {
		if slices.Contains(c.roles, r) {
			return true
		}
	}
	return false
}

func notFoundHandler(*http.Request, *caller, []byte) (int, any, error) {
	return 0, nil, apiError{status: http.StatusNotFound, code: "not_found", message: "metrics are not enabled"}
}

func (a *api) healthz(*http.Request, *caller, []byte) (int, any, error) {
	return http.StatusOK, map[string]string{"status": "ok"}, nil
}

func (a *api) readyz(r *http.Request, _ *caller, _ []byte) (int, any, error) {
	if a.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := a.opts.Ready(ctx); err != nil {
			// /readyz needs no token: the cause (a Redis address, a dial error) goes to the log,
			// once per interval however often the probe asks, and the answer stays generic.
			a.readyLog.Warn(a.log, "not ready", zap.Error(err))
			return 0, nil, apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "not ready; the daemon's log says why"}
		}
	}
	return http.StatusOK, map[string]string{"status": "ready"}, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(envelope{Error: errorBody{Code: "internal", Message: "cannot encode the answer"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
