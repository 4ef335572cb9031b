package wasim

import (
	"crypto/subtle"
	"mime"
	"net/http"
	"time"
)

const maxTokenBodyBytes = 16 << 10

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// tokenError is the RFC 6749 §5.2 error body.
type tokenError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// serveToken is the OAuth2 token endpoint of the platform that may front the provider:
// client_credentials (client id and secret in HTTP Basic or in the form) and refresh_token.
// Fault injection does not apply here: it models the provider, not the token issuer.
func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(status int, code, description string) {
		s.countRequest(opOAuthToken, code)
		writeJSON(w, status, tokenError{Error: code, ErrorDescription: description})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		fail(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBodyBytes)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	badClient := func() {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="wasim"`)
		}
		fail(http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
	}
	switch grant := r.PostForm.Get("grant_type"); grant {
	case "client_credentials":
		if !s.clientOK(clientID, secret) {
			badClient()
			return
		}
		// RFC 6749 §4.4.3: no refresh token for client credentials.
		s.issueToken(w, "")
	case "refresh_token":
		// Client authentication is optional for this grant, but wrong credentials still fail.
		if clientID != "" && !s.clientOK(clientID, secret) {
			badClient()
			return
		}
		rt := r.PostForm.Get("refresh_token")
		if rt == "" || !s.refreshTokens[rt] {
			fail(http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		}
		s.issueToken(w, rt)
	case "":
		fail(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", "use client_credentials or refresh_token")
	}
}

func (s *Sim) clientOK(id, secret string) bool {
	want, ok := s.oauthClients[id]
	return ok && id != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

// issueToken creates an access token; refresh, when set, is handed back as is (the simulator's
// refresh tokens do not rotate).
func (s *Sim) issueToken(w http.ResponseWriter, refresh string) {
	s.mu.Lock()
	now := s.now()
	// Forget expired tokens here so that a long-running simulator does not grow without bound.
	for t, expiry := range s.tokens {
		if !now.Before(expiry) {
			delete(s.tokens, t)
		}
	}
	// 43 random characters carry 258 bits: collisions are not a concern.
	token := s.randomString(43)
	s.tokens[token] = now.Add(s.tokenTTL)
	s.tokensIssued++
	s.count(opOAuthToken, "ok")
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken:  token,
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.tokenTTL / time.Second),
		RefreshToken: refresh,
	})
}
