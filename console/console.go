// Package console is the review console of sendworker: web pages served by
// the daemon under /console/ on the admin listener, where approvers read a
// send exactly as it will go out, with the conversation it lands in, and
// approve or reject it, and where admins watch and pause the accounts.
//
// It is another face of the admin API, not a second brain: every decision
// goes through the same approval.Service (digest-bound approval, no
// self-approval, pause), with the same identities, roles and account scopes
// as the API's tokens. It renders HTML on the server from embedded templates
// and assets (no CDN, no build step); the little script it ships only
// enhances (countdowns, keyboard, polling) and every action works as a plain
// form. It never logs tokens, session ids or message text, and never shows
// a send of an account outside the caller's scope.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/ratelimit"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed assets templates
var files embed.FS

// ProviderReader is the part of the provider client the console reads: the
// account's health and the chat a send goes to (provider.Client implements it).
type ProviderReader interface {
	GetAccount(ctx context.Context, accountID string) (*provider.Account, error)
	ListMessages(ctx context.Context, chatID string, p provider.ListMessagesParams) (*provider.MessageList, error)
	ListAttendees(ctx context.Context, chatID string, p provider.ListAttendeesParams) (*provider.AttendeeList, error)
}

// Forecaster is the rate limiter's read-only view of an account.
type Forecaster interface {
	Forecast(ctx context.Context, accountID string, now time.Time) (ratelimit.Forecast, error)
}

// BreakerReader reads an account's breaker (worker.ReadBreaker).
type BreakerReader func(ctx context.Context, accountID string) (open bool, status string, since time.Time, err error)

// Options configures the console.
type Options struct {
	// Tokens are the admin API's tokens (the daemon's store, reloaded in
	// place): a token signs in, and its identity's roles and accounts apply.
	Tokens *adminapi.TokenStore
	// SessionTTL is how long a session lasts. Default 12h.
	SessionTTL time.Duration
	// TrustedHeader, when set, takes the identity from this request header
	// (set by an authenticating proxy) instead of a sign-in. Off by default:
	// anyone who reaches the listener without the proxy could claim any identity.
	TrustedHeader string
	// SecureCookies marks cookies Secure even on plain HTTP (the console
	// behind a TLS-terminating proxy). A TLS request always gets them.
	SecureCookies bool
	Provider      ProviderReader
	Forecaster    Forecaster
	Breaker       BreakerReader
	Logger        *zap.Logger
	Now           func() time.Time
}

// Console is the console's HTTP handler. DevLink makes one-time sign-in links.
type Console struct {
	svc      *approval.Service
	opts     Options
	log      *zap.Logger
	mux      *http.ServeMux
	sessions *sessions
	pages    map[string]*template.Template
	accounts *accountList
}

// New returns the console over svc.
func New(svc *approval.Service, opts Options) *Console {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := svc.Ledger()
	c := &Console{
		svc:      svc,
		opts:     opts,
		log:      opts.Logger,
		mux:      http.NewServeMux(),
		sessions: newSessions(l.Sessions(), opts.SessionTTL, opts.Now),
		pages:    parseTemplates(),
		accounts: newAccountList(l, opts.Now),
	}
	c.routes()
	return c
}

func (c *Console) routes() {
	static, _ := fs.Sub(files, "assets")
	assets := http.StripPrefix(Prefix+"assets/", http.FileServerFS(static))
	c.mux.Handle("GET "+Prefix+"assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	c.mux.HandleFunc("GET "+Prefix+"dev-login", c.devLogin)
	c.mux.Handle("POST "+Prefix+"logout", c.page(nil, c.logout))

	reviewers := []string{adminapi.RoleApprover, adminapi.RoleAdmin}
	approvers := []string{adminapi.RoleApprover}
	admins := []string{adminapi.RoleAdmin}
	c.mux.Handle("GET "+Prefix+"{$}", c.page(reviewers, c.queue))
	c.mux.Handle("GET "+Prefix+"live", c.page(reviewers, c.live))
	c.mux.Handle("GET "+Prefix+"sends/{send_id}", c.page(reviewers, c.send))
	c.mux.Handle("POST "+Prefix+"sends/{send_id}/approve", c.page(approvers, c.approve))
	c.mux.Handle("POST "+Prefix+"sends/{send_id}/reject", c.page(approvers, c.reject))
	c.mux.Handle("POST "+Prefix+"sends/{send_id}/revise", c.page(approvers, c.revise))
	c.mux.Handle("POST "+Prefix+"sends/{send_id}/resolve", c.page(admins, c.resolve))
	c.mux.Handle("POST "+Prefix+"bulk", c.page(approvers, c.bulk))
	c.mux.Handle("GET "+Prefix+"accounts", c.page(admins, c.accountsPage))
	c.mux.Handle("POST "+Prefix+"accounts/{account_id}/{action}", c.page(admins, c.pauseAccount))
	c.mux.Handle("GET "+Prefix+"activity", c.page(reviewers, c.activity))
	c.mux.Handle("GET "+Prefix+"review", c.page(reviewers, c.needsReview))
}

// ServeHTTP serves the console's routes; anything else under the prefix is
// a 404 page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	if _, pattern := c.mux.Handler(r); pattern == "" {
		c.errorPage(w, r, nil, http.StatusNotFound, "There is no such page.")
		return
	}
	c.mux.ServeHTTP(w, r)
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	// Attachment previews load from the attachment origins (allow-listed at
	// enqueue), so images may come from elsewhere; nothing else may.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// Identity is the signed-in caller: an identity of the tokens table.
type Identity struct {
	Name     string
	Roles    []string
	Accounts adminapi.Scope
}

// Has reports whether the identity holds role.
func (id *Identity) Has(role string) bool { return slices.Contains(id.Roles, role) }

// identity looks up a configured identity by name, in the tokens in force.
func (c *Console) identity(name string) *Identity {
	if c.opts.Tokens == nil || name == "" {
		return nil
	}
	id, ok := c.opts.Tokens.ByName(name)
	if !ok {
		return nil
	}
	return &Identity{Name: id.Name, Roles: id.Roles, Accounts: id.Accounts}
}

// byToken finds the identity of a token (constant-time, as the API does).
func (c *Console) byToken(token string) *Identity {
	if c.opts.Tokens == nil || token == "" {
		return nil
	}
	id, ok := c.opts.Tokens.Lookup(token)
	if !ok {
		return nil
	}
	return &Identity{Name: id.Name, Roles: id.Roles, Accounts: id.Accounts}
}

// request is what a page handler gets.
type request struct {
	*http.Request
	who  *Identity
	sess *session
}

type pageHandler func(w http.ResponseWriter, r *request) error

// page wraps a handler: a session (else the sign-in page), the role (else a
// 403 page), the CSRF token on every POST (else a 403 page), a deadline.
func (c *Console) page(roles []string, h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		r = r.WithContext(ctx)
		sess, who, err := c.authenticate(w, r)
		if err != nil {
			c.log.Warn("console session lookup failed", zap.Error(err))
			c.errorPage(w, r, nil, http.StatusServiceUnavailable, "The console cannot reach its store; try again.")
			return
		}
		if who == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/live") {
				http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if roles != nil && !slices.ContainsFunc(roles, who.Has) {
			c.errorPage(w, r, who, http.StatusForbidden, "This page needs the role "+strings.Join(roles, " or ")+"; "+who.Name+" does not hold it.")
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || !sess.checkCSRF(r.PostFormValue("csrf")) {
				c.errorPage(w, r, who, http.StatusForbidden, "This form is out of date or did not come from the console (CSRF check). Go back, reload and try again.")
				return
			}
		}
		if err := h(w, &request{Request: r, who: who, sess: sess}); err != nil {
			c.log.Error("console page failed", zap.String("path", r.URL.Path), zap.String("by", who.Name), zap.Error(err))
			c.errorPage(w, r, who, http.StatusInternalServerError, "Something went wrong on our side; nothing was changed by this page. Try again.")
		}
	})
}

// sameOrigin refuses a cross-site POST when the browser says so (Fetch
// metadata or Origin); the CSRF token is the main defence, this a second.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		host := o[strings.Index(o, "://")+3:]
		return strings.EqualFold(host, r.Host)
	}
	return true
}

// authenticate finds the caller: the session cookie's identity, or in
// trusted-header mode the header's identity (a session is made for it, to
// carry its CSRF token).
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (*session, *Identity, error) {
	sess, err := c.sessions.fromRequest(r)
	if err != nil {
		return nil, nil, err
	}
	if h := c.opts.TrustedHeader; h != "" {
		name := r.Header.Get(h)
		who := c.identity(name)
		if who == nil {
			return nil, nil, nil
		}
		if sess == nil || sess.Identity != name {
			if sess, err = c.sessions.create(r.Context(), name); err != nil {
				return nil, nil, err
			}
			c.setSessionCookie(w, r, sess)
		}
		return sess, who, nil
	}
	if sess == nil {
		return nil, nil, nil
	}
	who := c.identity(sess.Identity)
	if who == nil {
		return nil, nil, nil // the identity was removed from the tokens: the session ends
	}
	return sess, who, nil
}
