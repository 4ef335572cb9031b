package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func (o *OAuthOptions) validate() []error {
	var errs []error
	if o.TokenURL == "" {
		errs = append(errs, errors.New("provider: OAuth.TokenURL is required"))
	} else if u, err := url.Parse(o.TokenURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("provider: OAuth.TokenURL must be an http or https URL"))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("provider: OAuth.ClientID is required"))
	}
	if o.EarlyExpiry < 0 {
		errs = append(errs, errors.New("provider: OAuth.EarlyExpiry must not be negative"))
	}
	return errs
}

// newTokenSource returns the shared token source for o: one token for all goroutines,
// fetched again EarlyExpiry before it expires.
//
// Both grants are wrapped in a plain source that fetches a new token on every call, and
// only the outer ReuseTokenSourceWithExpiry caches. (The sources of the oauth2 package cache
// themselves with a fixed 10 s margin, which would hand back the old token when our margin
// is longer.)
func newTokenSource(o OAuthOptions, transport http.RoundTripper, timeout time.Duration) oauth2.TokenSource {
	// oauth2's Token() takes no context; the token endpoint is bounded by this client's
	// timeout instead, so a hung endpoint cannot hold a send forever.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	})
	margin := o.EarlyExpiry
	if margin == 0 {
		margin = defaultEarlyExpiry
	}
	var src oauth2.TokenSource
	if o.RefreshToken == "" {
		cc := &clientcredentials.Config{
			ClientID:     o.ClientID,
			ClientSecret: o.ClientSecret,
			TokenURL:     o.TokenURL,
			Scopes:       o.Scopes,
		}
		src = clientCredentialsSource{ctx: ctx, conf: cc}
	} else {
		src = &refreshSource{
			ctx: ctx,
			conf: &oauth2.Config{
				ClientID:     o.ClientID,
				ClientSecret: o.ClientSecret,
				Endpoint:     oauth2.Endpoint{TokenURL: o.TokenURL},
				Scopes:       o.Scopes,
			},
			refreshToken: o.RefreshToken,
		}
	}
	return oauth2.ReuseTokenSourceWithExpiry(nil, src, margin)
}

// clientCredentialsSource fetches a new token with the client-credentials grant on each call.
type clientCredentialsSource struct {
	ctx  context.Context
	conf *clientcredentials.Config
}

func (s clientCredentialsSource) Token() (*oauth2.Token, error) { return s.conf.Token(s.ctx) }

// refreshSource fetches a new token with the refresh-token grant on each call, keeping the
// new refresh token when the server rotates it.
type refreshSource struct {
	ctx  context.Context
	conf *oauth2.Config

	mu           sync.Mutex
	refreshToken string
}

func (s *refreshSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A token with only a refresh token is invalid, so this source refreshes at once.
	tok, err := s.conf.TokenSource(s.ctx, &oauth2.Token{RefreshToken: s.refreshToken}).Token()
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken != "" {
		s.refreshToken = tok.RefreshToken
	}
	return tok, nil
}

// tokenError is a failure to get a bearer token. Its message keeps the token endpoint's
// status and error code only: the endpoint's body is not ours to print.
type tokenError struct {
	status int    // HTTP status of the token endpoint, 0 when none was received
	code   string // RFC 6749 error code, e.g. "invalid_client"
	err    error
}

func newTokenError(err error) *tokenError {
	te := &tokenError{err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te.code = re.ErrorCode
		if re.Response != nil {
			te.status = re.Response.StatusCode
		}
	}
	return te
}

func (e *tokenError) Error() string {
	switch {
	case e.status != 0 && e.code != "":
		return fmt.Sprintf("oauth2 token endpoint: %d %s", e.status, e.code)
	case e.status != 0:
		return fmt.Sprintf("oauth2 token endpoint: %d", e.status)
	case e.code != "":
		return "oauth2 token endpoint: " + e.code
	}
	// A network failure: oauth2 flattens it into text naming the token URL and the cause,
	// neither of which is secret.
	return "oauth2 token endpoint: " + e.err.Error()
}

func (e *tokenError) Unwrap() error { return e.err }

// class: no provider call was made, so the outcome is never unknown. A refused grant or
// client is permanent until someone fixes the configuration; anything else may pass.
func (e *tokenError) class() Class {
	switch {
	case e.status == http.StatusTooManyRequests, e.status >= 500:
		return ClassTransient
	case e.status >= 400, e.code != "":
		return ClassPermanent
	}
	return ClassTransient
}

// ErrCredentialsRefused: the provider (or, in OAuth2 mode, its token endpoint) refused our own
// credentials. Nothing a retry can fix: an operator must change the configuration.
var ErrCredentialsRefused = errors.New("provider credentials refused")

// CheckCredentials makes one small authenticated read (chats_list, limit 1) to learn whether the
// provider accepts our credentials. It returns an error wrapping ErrCredentialsRefused when they
// are refused: a permanent token-endpoint answer in OAuth2 mode, or the provider's 401/403 of
// credentials scope (missing_credentials, invalid_credentials, insufficient_privileges...) or a
// bare 401. Any other failure (network, 5xx, rate limit) says nothing about the credentials and
// is returned as it is. The provider's v1 API authenticates with X-API-KEY only: a bearer token
// sent to it directly (OAuth2 mode without a gateway in front) is refused here.
func (c *Client) CheckCredentials(ctx context.Context) error {
	_, err := c.ListChats(ctx, ListChatsParams{Limit: 1})
	if err == nil {
		return nil
	}
	var te *tokenError
	if errors.As(err, &te) && te.class() == ClassPermanent {
		return fmt.Errorf("%w: %w", ErrCredentialsRefused, err)
	}
	status := StatusOf(err)
	if ScopeOf(err) == ScopeCredentials || (status == http.StatusUnauthorized && SlugOf(err) == "") {
		return fmt.Errorf("%w: %w", ErrCredentialsRefused, err)
	}
	return err
}
