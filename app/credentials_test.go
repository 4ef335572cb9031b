package app

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sendworker/sendworker/provider/wasim"
)

// TestOAuth2CredentialsFailureAtStart: in oauth2 mode, a token endpoint that refuses the client,
// and a bearer token pointed straight at the provider's API (which takes only X-API-KEY), are
// both visible at start: /readyz answers 503 (its log names the refusal), and one clear error
// line says what is wrong, instead of sends waiting on backoff forever.
func TestOAuth2CredentialsFailureAtStart(t *testing.T) {
	tokens, err := wasim.Listen("127.0.0.1:0", wasim.Options{OAuthClients: map[string]string{"sendworker": "right-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tokens.Close() })
	cases := []struct {
		name, secret string
		base         string // "" for the daemon's own simulator, which takes only X-API-KEY
		wantInReady  string
	}{
		{"the token endpoint refuses the client", "wrong-secret", tokens.URL(), "oauth2 token endpoint: 401"},
		{"a bearer token sent to an X-API-KEY-only provider", "right-secret", "", "invalid_credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			env := map[string]string{
				"SENDWORKER_PROVIDER_AUTH":                "oauth2",
				"SENDWORKER_PROVIDER_API_KEY":             "",
				"SENDWORKER_PROVIDER_OAUTH_TOKEN_URL":     tokens.URL() + "/oauth/token",
				"SENDWORKER_PROVIDER_OAUTH_CLIENT_ID":     "sendworker",
				"SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET": c.secret,
			}
			if c.base != "" {
				env["SENDWORKER_PROVIDER_BASE_URL"] = c.base
			}
			d := startDaemonWithLogger(t, env, zap.New(core))
			deadline := time.Now().Add(10 * time.Second)
			var code int
			var body []byte
			for {
				code, body = d.call(t, "GET", "/readyz", "", nil)
				if code == 503 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code != 503 {
				t.Fatalf("readyz = %d %s", code, body)
			}
			// /readyz answers generically; the cause is in the daemon's log.
			why := false
			for _, l := range logs.FilterMessage("not ready").All() {
				msg, _ := l.ContextMap()["error"].(string)
				why = why || (strings.Contains(msg, "provider credentials refused") && strings.Contains(msg, c.wantInReady))
			}
			if !why {
				t.Fatalf("no readiness log naming the refusal: %+v", logs.FilterMessage("not ready").All())
			}
			lines := logs.FilterMessageSnippet("provider refused our credentials").All()
			if len(lines) != 1 || lines[0].Level != zap.ErrorLevel {
				t.Fatalf("%d log lines about the refusal, want one error: %+v", len(lines), lines)
			}
			hint, _ := lines[0].ContextMap()["hint"].(string)
			if !strings.Contains(hint, "X-API-KEY") || strings.Contains(lines[0].Message+hint, c.secret) {
				t.Fatalf("log line %+v", lines[0])
			}
		})
	}
}

// With the API key the provider takes, the daemon is ready.
func TestAPIKeyCredentialsAccepted(t *testing.T) {
	d := startDaemon(t, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := d.call(t, "GET", "/readyz", "", nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz = %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
