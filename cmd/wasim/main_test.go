package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider/wasim"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "seed.json")
	if err := os.WriteFile(good, []byte(`{"accounts":[{"id":"a","name":"A","phone_number":"33700000001"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"accounts":[{"id":"a","extra":1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{"defaults: demo seed, no auth", nil, nil, "", func(t *testing.T, c config) {
			if c.addr != "127.0.0.1:8090" || c.opts.APIKey != "" || c.opts.Seed == nil || len(c.opts.Seed.Accounts) != 3 || c.seedSource != "demo (embedded)" {
				t.Errorf("config = %+v", c)
			}
		}},
		{"environment", nil, map[string]string{"WASIM_ADDR": "127.0.0.1:9999", "WASIM_API_KEY": "k"}, "", func(t *testing.T, c config) {
			if c.addr != "127.0.0.1:9999" || c.opts.APIKey != "k" {
				t.Errorf("config = %+v", c)
			}
		}},
		{"flags win over environment", []string{"-addr", ":1", "-api-key", "f"}, map[string]string{"WASIM_ADDR": "x", "WASIM_API_KEY": "k"}, "", func(t *testing.T, c config) {
			if c.addr != ":1" || c.opts.APIKey != "f" {
				t.Errorf("config = %+v", c)
			}
		}},
		{"seed file", []string{"-seed", good}, nil, "", func(t *testing.T, c config) {
			if len(c.opts.Seed.Accounts) != 1 {
				t.Errorf("seed = %+v", c.opts.Seed)
			}
		}},
		{"generated", []string{"-generate-accounts", "3", "-generate-chats", "4"}, nil, "", func(t *testing.T, c config) {
			if len(c.opts.Seed.Accounts) != 3 || len(c.opts.Seed.Accounts[0].Chats) != 4 {
				t.Errorf("seed has %d accounts", len(c.opts.Seed.Accounts))
			}
		}},
		{"faults and oauth", []string{"-error-503", "0.1", "-rate-limit", "0.2", "-retry-after", "2s", "-latency-min", "5ms", "-oauth-client", "id:sec", "-refresh-token", "r1", "-rand-seed", "9"}, nil, "", func(t *testing.T, c config) {
			want := wasim.Faults{Error503Rate: 0.1, RateLimitRate: 0.2, RetryAfter: 2 * time.Second, LatencyMin: 5 * time.Millisecond}
			if c.opts.Faults != want || c.opts.OAuthClients["id"] != "sec" || len(c.opts.RefreshTokens) != 1 || c.opts.Rand == nil {
				t.Errorf("config = %+v", c.opts)
			}
		}},
		{"late store and clock offset", []string{"-late-store", "0.05", "-late-store-delay", "8s", "-clock-offset", "-2m"}, nil, "", func(t *testing.T, c config) {
			want := wasim.Faults{LateStoreRate: 0.05, LateStoreDelay: 8 * time.Second, ClockOffset: -2 * time.Minute}
			if c.opts.Faults != want {
				t.Errorf("faults = %+v", c.opts.Faults)
			}
		}},
		{"late store without delay", []string{"-late-store", "0.05"}, nil, "late_store_delay", nil},
		{"bad seed file", []string{"-seed", bad}, nil, "unknown field", nil},
		{"missing seed file", []string{"-seed", filepath.Join(dir, "none.json")}, nil, "no such file", nil},
		{"exclusive seeds", []string{"-seed", good, "-demo-seed"}, nil, "exclusive", nil},
		{"rates over 1", []string{"-error-500", "0.7", "-error-503", "0.7"}, nil, "must not exceed 1", nil},
		{"bad oauth client", []string{"-oauth-client", "nosecret"}, nil, "id:secret", nil},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments", nil},
		{"unknown flag", []string{"-nope"}, nil, "not defined", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// TestRunServesUntilCanceled starts the real command on a free port, reads its banner, calls the
// simulator and stops it as a signal would.
func TestRunServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- runWith(ctx, []string{"-addr", "127.0.0.1:0", "-api-key", "secret-key"}, env(nil), outW, &stderr)
		outW.Close()
	}()

	lines := bufio.NewScanner(out)
	var banner []string
	base := ""
	// Read the banner up to its account list.
	for lines.Scan() {
		line := lines.Text()
		banner = append(banner, line)
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "base" && f[1] == "URL" {
			base = f[2]
		}
		if len(f) >= 1 && f[0] == "accounts" {
			break
		}
	}
	if base == "" {
		t.Fatalf("no base URL in the banner: %q (stderr %q)", banner, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }() // keep draining so the command never blocks
	if !strings.Contains(banner[0], "SIMULATOR") {
		t.Errorf("the banner does not say it is a simulator: %q", banner[0])
	}

	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/accounts/acc-paris", nil)
	req.Header.Set("X-API-KEY", "secret-key")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code = %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wasim did not stop after cancel")
	}
	if strings.Contains(strings.Join(banner, "\n"), "secret-key") {
		t.Error("the banner printed the API key")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var stderr strings.Builder
	if code := runWith(context.Background(), []string{"-error-500", "2"}, env(nil), io.Discard, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "error_500") {
		t.Errorf("stderr = %q", stderr.String())
	}
}
