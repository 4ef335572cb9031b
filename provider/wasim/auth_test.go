package wasim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestAPIKeyAuth(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name       string
		headers    map[string]string
		wantStatus int
		wantSlug   string
	}{
		{"right key", nil, 200, ""},
		{"no credentials", map[string]string{"X-API-KEY": ""}, 401, "missing_credentials"},
		{"wrong key", map[string]string{"X-API-KEY": "nope"}, 401, "invalid_credentials"},
		{"bearer when only keys are accepted", map[string]string{"X-API-KEY": "", "Authorization": "Bearer abc"}, 401, "invalid_credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/accounts/acc-a", "/api/v1/nothing"} {
				r := e.request(http.MethodGet, path, nil, "", tt.headers)
				if tt.wantSlug == "" {
					if path == "/api/v1/accounts/acc-a" {
						wantStatus(t, r, tt.wantStatus)
					}
					continue
				}
				// Auth is checked before routing: an unknown route is 401 too.
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
			}
		})
	}

	t.Run("a refused send is a delivery", func(t *testing.T) {
		body, ct := multipartBody(t, [][2]string{{"text", "hi"}}, nil)
		r := e.request(http.MethodPost, "/api/v1/chats/chat-alice/messages", body, ct, map[string]string{"X-API-KEY": ""})
		wantProblem(t, r, 401, "missing_credentials")
		d := e.sim.Deliveries()
		if len(d) != 1 || d[0].Outcome != "rejected_missing_credentials" || d[0].ChatID != "chat-alice" {
			t.Errorf("deliveries = %+v", d)
		}
	})
}

func TestNoAuthConfigured(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.APIKey = "" })
	wantStatus(t, e.request(http.MethodGet, "/api/v1/accounts/acc-a", nil, "", map[string]string{"X-API-KEY": ""}), 200)
}

// postToken calls /oauth/token with a form, optionally with HTTP Basic client credentials.
func postToken(t *testing.T, e *env, form url.Values, basicID, basicSecret string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(basicID, basicSecret)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token body: %v", err)
	}
	return resp.StatusCode, body, resp.Header
}

func oauthEnv(t *testing.T) *env {
	return newEnv(t, func(o *Options) {
		o.APIKey = ""
		o.OAuthClients = map[string]string{"sendworker": "s3cret"}
		o.RefreshTokens = []string{"refresh-1"}
		o.TokenTTL = 10 * time.Minute
	})
}

func TestOAuthTokenEndpoint(t *testing.T) {
	tests := []struct {
		name        string
		form        url.Values
		basicID     string
		basicSecret string
		wantStatus  int
		wantError   string
		wantRefresh string
	}{
		{"client credentials in Basic", url.Values{"grant_type": {"client_credentials"}}, "sendworker", "s3cret", 200, "", ""},
		{"client credentials in the form", url.Values{"grant_type": {"client_credentials"}, "client_id": {"sendworker"}, "client_secret": {"s3cret"}}, "", "", 200, "", ""},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, "sendworker", "nope", 401, "invalid_client", ""},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}, "client_secret": {"s3cret"}}, "", "", 401, "invalid_client", ""},
		{"no client", url.Values{"grant_type": {"client_credentials"}}, "", "", 401, "invalid_client", ""},
		{"refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"refresh-1"}}, "", "", 200, "", "refresh-1"},
		{"refresh token with client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"refresh-1"}}, "sendworker", "s3cret", 200, "", "refresh-1"},
		{"refresh token, wrong client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"refresh-1"}}, "sendworker", "nope", 401, "invalid_client", ""},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, "", "", 400, "invalid_grant", ""},
		{"no grant", url.Values{}, "sendworker", "s3cret", 400, "invalid_request", ""},
		{"password grant", url.Values{"grant_type": {"password"}}, "sendworker", "s3cret", 400, "unsupported_grant_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := oauthEnv(t)
			status, body, hdr := postToken(t, e, tt.form, tt.basicID, tt.basicSecret)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", status, tt.wantStatus, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
			if tt.wantError != "" {
				if body["error"] != tt.wantError {
					t.Errorf("error = %v, want %s", body["error"], tt.wantError)
				}
				if e.sim.TokensIssued() != 0 {
					t.Error("a token was issued on error")
				}
				return
			}
			tok, _ := body["access_token"].(string)
			if tok == "" || body["token_type"] != "Bearer" || body["expires_in"] != float64(600) {
				t.Fatalf("token response = %v", body)
			}
			if rt, _ := body["refresh_token"].(string); rt != tt.wantRefresh {
				t.Errorf("refresh_token = %q, want %q", rt, tt.wantRefresh)
			}
			if e.sim.TokensIssued() != 1 {
				t.Errorf("TokensIssued = %d", e.sim.TokensIssued())
			}
			wantStatus(t, e.request(http.MethodGet, "/api/v1/accounts/acc-a", nil, "", map[string]string{"X-API-KEY": "", "Authorization": "Bearer " + tok}), 200)
		})
	}

	t.Run("method and content type", func(t *testing.T) {
		e := oauthEnv(t)
		resp, err := e.client.Get(e.srv.URL() + "/oauth/token")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET status = %d", resp.StatusCode)
		}
		resp, err = e.client.Post(e.srv.URL()+"/oauth/token", "application/json", strings.NewReader(`{"grant_type":"client_credentials"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("JSON status = %d", resp.StatusCode)
		}
	})
}

func TestBearerExpiry(t *testing.T) {
	e := oauthEnv(t)
	_, body, _ := postToken(t, e, url.Values{"grant_type": {"client_credentials"}}, "sendworker", "s3cret")
	bearer := map[string]string{"X-API-KEY": "", "Authorization": "Bearer " + body["access_token"].(string)}
	tests := []struct {
		name       string
		advance    time.Duration
		headers    map[string]string
		wantStatus int
		wantSlug   string
	}{
		{"fresh", 0, bearer, 200, ""},
		{"just before expiry", 10*time.Minute - time.Millisecond, bearer, 200, ""},
		{"expired", time.Millisecond, bearer, 401, "invalid_credentials"},
		{"unknown token", 0, map[string]string{"X-API-KEY": "", "Authorization": "Bearer nope"}, 401, "invalid_credentials"},
		{"not a bearer", 0, map[string]string{"X-API-KEY": "", "Authorization": "Basic Zm9vOmJhcg=="}, 401, "invalid_credentials"},
		{"nothing", 0, map[string]string{"X-API-KEY": ""}, 401, "missing_credentials"},
		{"API key when only OAuth is on", 0, map[string]string{"X-API-KEY": "test-key"}, 401, "invalid_credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			r := e.request(http.MethodGet, "/api/v1/chats", nil, "", tt.headers)
			if tt.wantSlug != "" {
				wantProblem(t, r, tt.wantStatus, tt.wantSlug)
				return
			}
			wantStatus(t, r, tt.wantStatus)
		})
	}
}

// TestOAuthLibraries checks the endpoint against golang.org/x/oauth2, which the provider client
// may use: client credentials first, then a refresh-token source after expiry.
func TestOAuthLibraries(t *testing.T) {
	e := oauthEnv(t)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.client)
	cc := clientcredentials.Config{ClientID: "sendworker", ClientSecret: "s3cret", TokenURL: e.srv.URL() + "/oauth/token"}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	wantStatus(t, e.request(http.MethodGet, "/api/v1/chats", nil, "", map[string]string{"X-API-KEY": "", "Authorization": "Bearer " + tok.AccessToken}), 200)

	conf := oauth2.Config{ClientID: "sendworker", ClientSecret: "s3cret", Endpoint: oauth2.Endpoint{TokenURL: cc.TokenURL}}
	src := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: "refresh-1"})
	tok2, err := src.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken != "refresh-1" {
		t.Errorf("refreshed token = %+v", tok2)
	}
	if e.sim.TokensIssued() != 2 {
		t.Errorf("TokensIssued = %d, want 2", e.sim.TokensIssued())
	}
}
