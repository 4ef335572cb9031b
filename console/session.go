package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ledger"
)

// Sessions live in Redis, next to the ledger's keys, so every replica of
// the daemon knows them and a sign-out ends a session everywhere. The cookie
// holds a random session id; Redis holds only its SHA-256, so reading the
// store does not give a usable cookie.

const (
	sessionCookie = "sw_session"
	loginCookie   = "sw_login" // the sign-in form's own CSRF value (double submit)
	devCodeTTL    = 24 * time.Hour
)

type session struct {
	Identity string    `json:"identity"`
	CSRF     string    `json:"csrf"`
	Expires  time.Time `json:"expires"`
	id       string
}

// checkCSRF compares a form's token with the session's in constant time.
func (s *session) checkCSRF(token string) bool {
	return s != nil && token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

type sessions struct {
	store *ledger.SessionStore
	ttl   time.Duration
	now   func() time.Time
}

func newSessions(store *ledger.SessionStore, ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{store: store, ttl: ttl, now: now}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *sessions) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "session:" + hex.EncodeToString(sum[:])
}

// create stores a new session of identity and returns it.
func (s *sessions) create(ctx context.Context, identity string) (*session, error) {
	sess := &session{Identity: identity, CSRF: randomID(), Expires: s.now().Add(s.ttl), id: randomID()}
	data, _ := json.Marshal(sess)
	if err := s.store.Put(ctx, s.key(sess.id), data, s.ttl); err != nil {
		return nil, fmt.Errorf("console: create session: %w", err)
	}
	return sess, nil
}

// fromRequest returns the session of the request's cookie, or nil.
func (s *sessions) fromRequest(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) != 64 {
		return nil, nil
	}
	data, err := s.store.Get(r.Context(), s.key(ck.Value))
	if err != nil {
		return nil, fmt.Errorf("console: read session: %w", err)
	}
	if data == nil {
		return nil, nil
	}
	var sess session
	if json.Unmarshal(data, &sess) != nil || !s.now().Before(sess.Expires) {
		return nil, nil
	}
	sess.id = ck.Value
	return &sess, nil
}

func (s *sessions) delete(ctx context.Context, sess *session) error {
	return s.store.Delete(ctx, s.key(sess.id))
}

// NewDevCode stores a one-time sign-in code for identity (the -dev banner's
// link): the first visit of the link signs in and spends it.
func (c *Console) NewDevCode(ctx context.Context, identity string) (string, error) {
	code := randomID()
	if err := c.sessions.store.Put(ctx, "devcode:"+code, []byte(identity), devCodeTTL); err != nil {
		return "", fmt.Errorf("console: dev code: %w", err)
	}
	return code, nil
}

func (s *sessions) spendDevCode(ctx context.Context, code string) (string, error) {
	if len(code) != 64 {
		return "", nil
	}
	v, err := s.store.Take(ctx, "devcode:"+code)
	return string(v), err
}

func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.opts.SecureCookies }

func (c *Console) setSessionCookie(w http.ResponseWriter, r *http.Request, sess *session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: Prefix, MaxAge: int(c.opts.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r),
	})
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.IsAbs() || u.Host != "" || len(next) < len(Prefix) || next[:len(Prefix)] != Prefix || (len(next) > 1 && next[1] == '/') {
		return Prefix
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// GET /console/login
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	form := randomID()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: form, Path: Prefix, MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	c.render(w, r, status, "login", map[string]any{
		"CSRF": form, "Next": safeNext(next), "TrustedHeader": c.opts.TrustedHeader != "",
	}, &base{Title: "Sign in", Problem: problem}, nil)
}

// POST /console/login: token → session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.renderLogin(w, r, http.StatusForbidden, "The sign-in form was out of date (CSRF check); try again.")
		return
	}
	who := c.byToken(r.PostFormValue("token"))
	if who == nil {
		c.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	c.signIn(w, r, who.Name, safeNext(r.PostFormValue("next")))
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request, identity, next string) {
	sess, err := c.sessions.create(r.Context(), identity)
	if err != nil {
		c.log.Warn("console sign-in failed", zap.Error(err))
		c.errorPage(w, r, nil, http.StatusServiceUnavailable, "The console cannot reach its store; try again.")
		return
	}
	c.clearCookie(w, r, loginCookie)
	c.setSessionCookie(w, r, sess)
	c.log.Info("console sign-in", zap.String("by", identity))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// GET /console/dev-login?code=: a one-time link of the -dev banner.
func (c *Console) devLogin(w http.ResponseWriter, r *http.Request) {
	name, err := c.sessions.spendDevCode(r.Context(), r.URL.Query().Get("code"))
	if err != nil || name == "" || c.identity(name) == nil {
		c.renderLogin(w, r, http.StatusUnauthorized, "That sign-in link is used up or unknown; sign in with a token.")
		return
	}
	c.signIn(w, r, name, Prefix)
}

// POST /console/logout
func (c *Console) logout(w http.ResponseWriter, r *request) error {
	if err := c.sessions.delete(r.Context(), r.sess); err != nil {
		return err
	}
	c.clearCookie(w, r.Request, sessionCookie)
	http.Redirect(w, r.Request, Prefix+"login", http.StatusSeeOther)
	return nil
}
