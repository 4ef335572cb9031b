package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Operation names, as docs/PROVIDER-API.md and the task types use them. Error.Op is one of these.
const (
	OpAccountsGet        = "accounts_get"
	OpAccountsSync       = "accounts_sync"
	OpChatsList          = "chats_list"
	OpChatsGet           = "chats_get"
	OpChatsMessagesList  = "chats_messages_list"
	OpChatsAttendeesList = "chats_attendees_list"
	OpChatsMessagesSend  = "chats_messages_send"
	OpChatsCreate        = "chats_create"
	OpMessagesReaction   = "messages_reaction"
	OpMessagesEdit       = "messages_edit"
	OpMessagesDelete     = "messages_delete"
)

// IsSending reports whether op is a sending call: one the contact can see, never retried by
// the client, whose lost answers are unknown outcomes.
func IsSending(op string) bool {
	switch op {
	case OpChatsMessagesSend, OpChatsCreate, OpMessagesReaction, OpMessagesEdit, OpMessagesDelete:
		return true
	}
	return false
}

const (
	apiPrefix          = "/api/v1"
	defaultTimeout     = 30 * time.Second
	defaultReadRetries = 2
	defaultUserAgent   = "sendworker-provider/1"
	defaultEarlyExpiry = time.Minute
	// maxResponseBody caps what the client reads of any answer; lists of 250 messages are
	// far below it.
	maxResponseBody = 10 << 20
	// maxDrain is how much of an unread body is discarded so the connection can be reused;
	// past it, closing the connection is cheaper.
	maxDrain = 64 << 10
)

// Options configure a Client. Exactly one of APIKey, OAuth and NoAuth must be set.
type Options struct {
	// BaseURL is the tenant's address without the API prefix, e.g.
	// "https://api1.unipile.com:13443"; the client appends "/api/v1".
	BaseURL string
	// APIKey is sent in the X-API-KEY header.
	APIKey string
	// OAuth authenticates with bearer tokens from a token endpoint instead.
	OAuth *OAuthOptions
	// NoAuth sends no credentials at all; only for the development simulator.
	NoAuth bool
	// HTTPClient is the base client (its Transport is used; redirects are never followed).
	// Default: a client on http.DefaultTransport.
	HTTPClient *http.Client
	// Timeout caps every request, including reading the answer, even when the context has
	// no deadline. Default 30s.
	Timeout time.Duration
	// ReadRetries is how many times a read-only (GET) call is retried on a transient or
	// rate-limited error, with a short backoff that honours Retry-After. 0 means the default
	// of 2; a negative value disables retries. Sending calls are never retried.
	ReadRetries int
	// UserAgent is sent with every request. Default "sendworker-provider/1".
	UserAgent string
	// Pacer, when set, is waited for before every HTTP request to the API: each attempt of a
	// read (its retries too), each page of a listing, and a sending call unless its context
	// says WithoutPacing. When it fails nothing is sent and the call fails with an *Error of
	// class ClassTransient wrapping a *PaceError; a read is then not retried. The requests
	// for OAuth tokens are not paced: they go to the token endpoint, not to the API, whose
	// request rate is what a Pacer spreads, and they are rare (one per token lifetime).
	Pacer func(ctx context.Context) error
	// Observer, when set, is called once per attempt of a call that passed its Pacer, when the
	// attempt has ended (see Exchange). It must not block.
	Observer func(Exchange)
}

// Exchange is one attempt of a call, as Options.Observer sees it: one HTTP request to the API
// and its answer.
type Exchange struct {
	Op string // the operation (see the Op constants)
	// Status is the HTTP status of the answer; 0 when none came (a transport failure, or
	// credentials that could not be had, in which case no request went out).
	Status int
	// Err is nil when the attempt succeeded, else its *Error (Class says how it failed).
	Err *Error
	// Duration runs from the attempt's start (after pacing) to the response headers, or to
	// the failure when no answer came. Reading the body is not counted.
	Duration time.Duration
}

// PaceError is the failure of Options.Pacer: the call was not made. It is the Err of the
// call's *Error; find it with errors.As.
type PaceError struct{ Err error }

func (e *PaceError) Error() string { return "not paced: " + e.Err.Error() }
func (e *PaceError) Unwrap() error { return e.Err }

// unpacedKey marks a context whose calls skip Options.Pacer.
type unpacedKey struct{}

// WithoutPacing returns a context whose calls are not paced by Options.Pacer: for a caller
// that waited for its rate itself before the call (the worker waits before it starts an
// attempt, so that it never waits with an attempt lease running).
func WithoutPacing(ctx context.Context) context.Context {
	return context.WithValue(ctx, unpacedKey{}, true)
}

func unpaced(ctx context.Context) bool {
	v, _ := ctx.Value(unpacedKey{}).(bool)
	return v
}

// String describes the options without their secrets, so that logging them is safe.
func (o Options) String() string {
	auth := "none"
	switch {
	case o.APIKey != "" && o.OAuth != nil:
		auth = "api_key+oauth2"
	case o.APIKey != "":
		auth = "api_key"
	case o.OAuth != nil:
		auth = "oauth2"
	}
	return fmt.Sprintf("provider.Options{BaseURL:%q Auth:%s Timeout:%s ReadRetries:%d}",
		o.BaseURL, auth, o.Timeout, o.ReadRetries)
}

// GoString keeps %#v from printing the secrets too.
func (o Options) GoString() string { return o.String() }

// OAuthOptions select OAuth2 bearer tokens: the client-credentials grant when RefreshToken is
// empty, else the refresh-token grant. Tokens are shared by all goroutines and renewed
// EarlyExpiry before they expire, so a request never leaves with a token about to lapse.
type OAuthOptions struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	RefreshToken string
	Scopes       []string
	// EarlyExpiry is how long before its expiry a token is replaced. Default 1 minute. A
	// token whose lifetime is shorter is fetched anew for every request.
	EarlyExpiry time.Duration
}

// String describes the options without their secrets.
func (o OAuthOptions) String() string {
	grant := "client_credentials"
	if o.RefreshToken != "" {
		grant = "refresh_token"
	}
	return fmt.Sprintf("provider.OAuthOptions{TokenURL:%q ClientID:%q Grant:%s}", o.TokenURL, o.ClientID, grant)
}

// GoString keeps %#v from printing the secrets too.
func (o OAuthOptions) GoString() string { return o.String() }

// Client calls the provider API. It is safe for concurrent use.
type Client struct {
	base        string // scheme://host[:port][/path]/api/v1
	http        *http.Client
	apiKey      string
	tokens      oauth2.TokenSource // nil unless OAuth
	timeout     time.Duration
	readRetries int
	userAgent   string
	pacer       func(ctx context.Context) error // nil: no pacing
	observer    func(Exchange)                  // nil: not observed

	// Injected for tests: the clock (Retry-After dates) and the wait between read retries.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	// Backoff between read retries: retryBase doubled per attempt, capped at retryMax, with
	// jitter. A Retry-After longer than maxRetryWait is not waited for inside the client:
	// the error goes back to the caller, whose scheduler can wait without holding a worker.
	retryBase, retryMax, maxRetryWait time.Duration
	maxBody                           int64 // cap on a response body read
}

// New checks opts and returns a Client. All problems are reported at once, each naming its
// field.
func New(opts Options) (*Client, error) {
	var errs []error
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		errs = append(errs, err)
	}
	modes := 0
	if opts.APIKey != "" {
		modes++
	}
	if opts.OAuth != nil {
		modes++
		errs = append(errs, opts.OAuth.validate()...)
	}
	if opts.NoAuth {
		modes++
	}
	if modes != 1 {
		errs = append(errs, errors.New("provider: exactly one of APIKey, OAuth and NoAuth must be set"))
	}
	if opts.Timeout < 0 {
		errs = append(errs, errors.New("provider: Timeout must not be negative"))
	}
	if strings.ContainsAny(opts.APIKey, "\r\n") || strings.ContainsAny(opts.UserAgent, "\r\n") {
		errs = append(errs, errors.New("provider: APIKey and UserAgent must not contain line breaks"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	hc := &http.Client{}
	if opts.HTTPClient != nil {
		copied := *opts.HTTPClient
		hc = &copied
	}
	// A redirected POST is either turned into a GET or sent again: neither may happen to a
	// send, and the provider has no reason to redirect.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c := &Client{
		base:         base,
		http:         hc,
		apiKey:       opts.APIKey,
		timeout:      opts.Timeout,
		readRetries:  opts.ReadRetries,
		userAgent:    opts.UserAgent,
		pacer:        opts.Pacer,
		observer:     opts.Observer,
		now:          time.Now,
		sleep:        sleepCtx,
		retryBase:    200 * time.Millisecond,
		retryMax:     2 * time.Second,
		maxRetryWait: 5 * time.Second,
		maxBody:      maxResponseBody,
	}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	switch {
	case c.readRetries == 0:
		c.readRetries = defaultReadRetries
	case c.readRetries < 0:
		c.readRetries = 0
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}
	if opts.OAuth != nil {
		c.tokens = newTokenSource(*opts.OAuth, hc.Transport, c.timeout)
	}
	return c, nil
}

// parseBaseURL checks the base URL and returns it with the API prefix appended.
func parseBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("provider: BaseURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("provider: BaseURL is not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("provider: BaseURL must be an http or https URL")
	case u.Host == "":
		return "", errors.New("provider: BaseURL has no host")
	case u.User != nil:
		// Credentials in the URL would end up in error messages.
		return "", errors.New("provider: BaseURL must not contain credentials; use APIKey or OAuth")
	case u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("provider: BaseURL must not have a query or fragment")
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	if strings.HasSuffix(path, apiPrefix) {
		return "", errors.New("provider: BaseURL must not end in /api/v1: the client appends it")
	}
	return u.Scheme + "://" + u.Host + path + apiPrefix, nil
}

// request is one provider call, described before it is sent.
type request struct {
	op     string
	method string
	path   string // escaped path below /api/v1, e.g. "/chats/abc/messages"
	query  url.Values
	json   any   // JSON body, or nil
	form   *form // multipart body, streamed; or nil
}

// do runs r and returns the body of its 2xx answer (nil when a sending call's answer was
// lost after its status arrived). Failures are *Error. Read-only calls are retried on
// transient and rate-limited failures; sending calls run exactly once.
// Timeout is the cap on one request; the worker keeps its attempt lease
// longer than this so no sending call outlives its lease.
func (c *Client) Timeout() time.Duration { return c.timeout }

func (c *Client) do(ctx context.Context, r *request) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, c.newError(r, ClassTransient, context.Cause(ctx))
		}
		if c.pacer != nil && !unpaced(ctx) {
			if err := c.pacer(ctx); err != nil {
				return nil, c.newError(r, ClassTransient, &PaceError{Err: err})
			}
		}
		data, e := c.attempt(ctx, r)
		if e == nil {
			return data, nil
		}
		wait, ok := c.retryWait(r, e, attempt)
		if !ok || ctx.Err() != nil {
			return nil, e
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, e
		}
	}
}

// retryWait decides whether a failed attempt of r is retried, and after how long.
func (c *Client) retryWait(r *request, e *Error, attempt int) (time.Duration, bool) {
	if r.method != http.MethodGet || IsSending(r.op) || attempt >= c.readRetries {
		return 0, false
	}
	if e.Class != ClassTransient && e.Class != ClassRateLimited {
		return 0, false
	}
	if e.RetryAfter > 0 {
		return e.RetryAfter, e.RetryAfter <= c.maxRetryWait
	}
	d := min(c.retryBase<<attempt, c.retryMax)
	// Jitter in [d/2, d] spreads the retries of many workers hitting the same fault.
	return d/2 + rand.N(d/2+1), true
}

func (c *Client) newError(r *request, class Class, err error) *Error {
	return &Error{Op: r.op, Method: r.method, Path: apiPrefix + r.path, Class: class, Err: err}
}

// attempt sends r once, and reports it to the observer.
func (c *Client) attempt(ctx context.Context, r *request) ([]byte, *Error) {
	var t trip
	if c.observer == nil {
		return c.roundTrip(ctx, r, &t)
	}
	start := time.Now()
	data, e := c.roundTrip(ctx, r, &t)
	end := t.headers
	if end.IsZero() {
		end = time.Now()
	}
	c.observer(Exchange{Op: r.op, Status: t.status, Err: e, Duration: end.Sub(start)})
	return data, e
}

// trip is what a round trip learned besides its result: the status of the answer and when
// its headers came (both zero when no answer came).
type trip struct {
	status  int
	headers time.Time
}

// roundTrip sends r once.
func (c *Client) roundTrip(ctx context.Context, r *request, t *trip) ([]byte, *Error) {
	e := c.newError(r, ClassPermanent, nil)
	fail := func(class Class, err error) ([]byte, *Error) {
		e.Class, e.Err = class, err
		return nil, e
	}

	// The token comes first: if it cannot be had, nothing was sent and no attachment opened.
	var bearer *oauth2.Token
	if c.tokens != nil {
		tok, err := c.tokens.Token()
		if err != nil {
			te := newTokenError(err)
			return fail(te.class(), te)
		}
		bearer = tok
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// written: the transport reported the whole request written, or consumed the body to its
	// end. From then on the provider may act on a sending call whatever happens to the answer.
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	})

	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, nil)
	if err != nil {
		return fail(ClassPermanent, fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	switch {
	case bearer != nil:
		bearer.SetAuthHeader(req)
	case c.apiKey != "":
		req.Header.Set("X-API-KEY", c.apiKey)
	}

	finish := func() error { return nil }
	var payload []byte // a body held in memory: JSON, or a form without files
	switch {
	case r.json != nil:
		payload, err = json.Marshal(r.json)
		if err != nil {
			return fail(ClassPermanent, fmt.Errorf("%w: %v", ErrInvalidArgument, err))
		}
		req.Header.Set("Content-Type", "application/json")
	case r.form != nil && len(r.form.files) == 0:
		// Text fields only: small, so built whole and sent with its length, in one write
		// (a streamed body goes out chunked, a write per part).
		var contentType string
		payload, contentType = r.form.encode()
		req.Header.Set("Content-Type", contentType)
	case r.form != nil:
		body, contentType, length, stop := r.form.stream()
		req.Header.Set("Content-Type", contentType)
		req.Body = io.NopCloser(&eofReader{r: body, eof: &written})
		if length >= 0 {
			// Every file's size is known: sent with its length, not chunked.
			req.ContentLength = length
		}
		finish = stop
	}
	if payload != nil {
		req.ContentLength = int64(len(payload))
		// GetBody lets the transport resend on a fresh connection when nothing at all was
		// written on a stale one; it never replays a request that went out.
		req.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(&eofReader{r: bytes.NewReader(payload), eof: &written}), nil
		}
		req.Body, _ = req.GetBody()
	}

	resp, err := c.http.Do(req)
	if err == nil {
		t.status, t.headers = resp.StatusCode, time.Now()
	}
	producerErr := finish()
	if err != nil {
		class := classifyTransport(r.op, written.Load())
		if ae := (*attachmentError)(nil); errors.As(producerErr, &ae) {
			// The body was cut short by its own source: the provider saw an incomplete
			// request and cannot have acted on it.
			return fail(ClassOf(ae.err), ae)
		}
		return fail(class, transportCause(ctx, err))
	}
	defer drainClose(resp.Body)
	e.Status = resp.StatusCode

	data, readErr := readCapped(resp.Body, c.maxBody)
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if readErr != nil {
			if IsSending(r.op) {
				// The provider accepted the call; only the ids in its answer are lost.
				return nil, nil
			}
			if errors.Is(readErr, ErrBodyTooLarge) {
				return fail(ClassPermanent, readErr)
			}
			return fail(ClassTransient, transportCause(ctx, readErr))
		}
		return data, nil
	}
	e.Problem = decodeProblem(data)
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return fail(classifyProblem(r.op, resp.StatusCode, e.Problem), ErrStatus)
}

// transportCause returns the error to report for a failed round trip: the context's cause
// when the deadline or cancellation explains it, else the transport error without its
// *url.Error wrapper (whose URL repeats the method and path the Error already names).
func transportCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			return fmt.Errorf("%w (%v)", cause, unwrapURLError(err))
		}
	}
	return unwrapURLError(err)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readCapped reads a whole body, up to max bytes.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return data, err
	}
	if int64(len(data)) > max {
		return nil, ErrBodyTooLarge
	}
	return data, nil
}

// drainClose discards what is left of a body (within reason) and closes it, so that the
// connection goes back to the pool.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}

// eofReader records that its reader was read to the end: the transport has taken the whole
// request body.
type eofReader struct {
	r   io.Reader
	eof *atomic.Bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof.Store(true)
	}
	return n, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// escapePath joins the path segments below /api/v1, escaping each one: ids may contain '@'
// or '/'.
func escapePath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// checkID refuses ids that cannot name a resource: an empty id would turn
// "/chats/{id}/messages" into another route, and dot segments would be normalised away.
func checkID(name, id string) error {
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("%w: %s is required", ErrInvalidArgument, name)
	}
	if len(id) > 1024 {
		return fmt.Errorf("%w: %s is too long", ErrInvalidArgument, name)
	}
	return nil
}

// checkLimit refuses a page size outside the provider's 1–250 (0 means its default).
func checkLimit(limit int) error {
	if limit < 0 || limit > 250 {
		return fmt.Errorf("%w: limit must be between 1 and 250 (0 for the default)", ErrInvalidArgument)
	}
	return nil
}
