package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/devenv"
)

// TestDevDemo runs the README's one-command demo end to end (in-process Redis,
// simulator, demo sends approved automatically) and checks every demo send
// reached the outcome the demo promises.
func TestDevDemo(t *testing.T) {
	t.Setenv("SENDWORKER_ADMIN_ADDR", "127.0.0.1:0")
	var out, errOut bytes.Buffer
	code := run([]string{"-dev", "-dev-approve", "-dev-exit-after", "6s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"sendworker DEV MODE — nothing real is sent",
		"RESULT demo-1-reply-lucas",
		"RESULT demo-2-create-chloe",
		"reason=contact_replied",
		"reason=cold_recipient",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q\n%s", want, got)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "RESULT demo-1-") || strings.HasPrefix(line, "RESULT demo-2-") {
			if !strings.Contains(line, " sent ") || !strings.Contains(line, "message_id=") {
				t.Errorf("warm send not sent: %s", line)
			}
		}
		if strings.HasPrefix(line, "RESULT demo-5-") {
			t.Errorf("the unhealthy account's send must wait, not end: %s", line)
		}
	}
	// -dev-approve: the banner says the demo approves them, and offers no approve command.
	for _, wrong := range []string{"pending approval", "sendctl approve"} {
		if strings.Contains(got, wrong) {
			t.Errorf("with -dev-approve the banner still says %q:\n%s", wrong, got)
		}
	}
	if !strings.Contains(got, "approves them now") {
		t.Errorf("the banner does not say the demo approves the sends:\n%s", got)
	}
	// The banner prints the demo tokens on purpose; the logs must not.
	if strings.Contains(errOut.String(), "Special offer") || strings.Contains(errOut.String(), "dev-alice-") {
		t.Errorf("logs leak message text or tokens:\n%s", errOut.String())
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	t.Setenv("SENDWORKER_CONCURRENCY", "lots")
	t.Setenv("SENDWORKER_RATE_MIN_INTERVAL", "-1s")
	t.Setenv("SENDWORKER_PROVIDER_BASE_URL", "not a url")
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{"SENDWORKER_CONCURRENCY", "SENDWORKER_RATE_MIN_INTERVAL", "SENDWORKER_PROVIDER_BASE_URL", "SENDWORKER_ADMIN_TOKENS"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, errOut.String())
		}
	}
}

func TestPrintConfigRedactsSecrets(t *testing.T) {
	t.Setenv("SENDWORKER_PROVIDER_BASE_URL", "https://api.example.com:13443")
	t.Setenv("SENDWORKER_PROVIDER_API_KEY", "super-secret-provider-key")
	t.Setenv("SENDWORKER_ADMIN_TOKENS", "alice:approver:alice-token-0123456789")
	var out, errOut bytes.Buffer
	if code := run([]string{"-print-config"}, &out, &errOut); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, errOut.String())
	}
	if strings.Contains(out.String(), "super-secret-provider-key") || strings.Contains(out.String(), "alice-token-0123456789") {
		t.Fatalf("secret printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "SENDWORKER_PROVIDER_API_KEY=<secret>") {
		t.Fatalf("api key not shown as <secret>:\n%s", out.String())
	}
}

// TestDevPrintConfigShowsEffectiveValues: `sendworker -dev -print-config` prints the values the
// dev daemon runs with (admin address on 127.0.0.1, the demo spacing and reconcile delay), not
// the production defaults, and says what dev mode provides for the settings left empty.
func TestDevPrintConfigShowsEffectiveValues(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-dev", "-print-config"}, &out, &errOut); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, errOut.String())
	}
	printed := map[string]string{}
	var notes []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n, ok := strings.CutPrefix(line, "# "); ok {
			notes = append(notes, n)
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		printed[k] = v
	}

	// What the dev daemon runs with: the same loading as run, then the dev environment.
	cfg, err := config.Load(withDev(os.LookupEnv), os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	env, err := devenv.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	// Settings dev mode provides at start (a free port, generated keys and tokens) are
	// described by the notes instead.
	provided := map[string]bool{"SENDWORKER_REDIS_URL": true, "SENDWORKER_PROVIDER_BASE_URL": true,
		"SENDWORKER_PROVIDER_API_KEY": true, "SENDWORKER_ADMIN_TOKENS": true, "SENDWORKER_INBOUND_SECRET": true}
	for _, line := range strings.Split(strings.TrimSpace(cfg.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if provided[k] {
			continue
		}
		if printed[k] != v {
			t.Errorf("-print-config says %s=%s, the dev daemon runs with %s", k, printed[k], v)
		}
	}
	for k, want := range map[string]string{
		"SENDWORKER_ADMIN_ADDR": "127.0.0.1:8080", "SENDWORKER_RATE_MIN_INTERVAL": "2s",
		"SENDWORKER_RATE_JITTER": "1s", "SENDWORKER_RECONCILE_DELAY": "2s",
	} {
		if printed[k] != want {
			t.Errorf("%s=%s, want %s", k, printed[k], want)
		}
	}
	for _, want := range []string{"in-process Redis", "provider simulator", "demo tokens", "webhook at the receiver"} {
		if !strings.Contains(strings.Join(notes, "\n"), want) {
			t.Errorf("no note says %q: %q", want, notes)
		}
	}
}
