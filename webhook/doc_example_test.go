package webhook_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/webhook"
)

// TestDocPythonVerifier runs the Python verifier of docs/WEBHOOK.md against requests signed by
// Sign: the genuine one passes; a tampered body, a replay under a fresh delivery id and a
// relabelled event fail. The documentation cannot drift from the signing code.
func TestDocPythonVerifier(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: the Python example of docs/WEBHOOK.md is not run")
	}
	doc, err := os.ReadFile("../docs/WEBHOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/WEBHOOK.md has no python block")
	}
	secret := []byte("webhook-secret-0123456789")
	ts := time.Now().Unix()
	body := `{"send_id":"s-1","state":"sent"}`
	delivery, event := "1764750000000-0", webhook.EventResult
	headers := map[string]string{
		webhook.HeaderTimestamp: strconv.FormatInt(ts, 10),
		webhook.HeaderDelivery:  delivery,
		webhook.HeaderEvent:     event,
		webhook.HeaderSignature: webhook.Sign(secret, ts, delivery, event, []byte(body)),
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range headers {
			h[a] = b
		}
		h[k] = v
		return h
	}
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		want    bool
	}{
		{"genuine", headers, body, true},
		{"tampered body", headers, `{"send_id":"s-1","state":"failed"}`, false},
		{"fresh delivery id", with(webhook.HeaderDelivery, "1764750000001-0"), body, false},
		{"other event", with(webhook.HeaderEvent, webhook.EventAccountBreakerOpen), body, false},
		{"stale", with(webhook.HeaderTimestamp, strconv.FormatInt(ts-3600, 10)), body, false},
	}
	for _, tc := range cases {
		hj, _ := json.Marshal(tc.headers)
		bj, _ := json.Marshal(tc.body)
		script := string(m[1]) + "\nimport json, sys\n" +
			"print(verify(b" + strconv.Quote(string(secret)) + ", json.loads(" + strconv.Quote(string(hj)) + "), json.loads(" + strconv.Quote(string(bj)) + ").encode()))\n"
		out, err := exec.Command(py, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: python: %v\n%s", tc.name, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != map[bool]string{true: "True", false: "False"}[tc.want] {
			t.Errorf("%s: verify() = %s, want %v", tc.name, got, tc.want)
		}
	}
}
