package main

import (
	"bytes"
	"strings"
	"testing"
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
