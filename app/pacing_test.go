package app

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDaemonPacesProviderLookups: an admin API look-up of the provider waits for the global
// request rate, like the worker's reads (one more wait in the limiter's histogram), and is
// observed in the provider metrics under the operation the client names.
func TestDaemonPacesProviderLookups(t *testing.T) {
	d := startDaemon(t, nil)
	const (
		waits   = "sendworker_ratelimit_global_wait_seconds_count"
		lookups = `sendworker_provider_request_duration_seconds_count{operation="accounts_get",status="200"}`
		creds   = `sendworker_provider_request_duration_seconds_count{operation="chats_list",status="200"}`
	)
	// The credentials check at start is a provider request too: let it pass first.
	waitFor(t, 10*time.Second, func() bool { return metricValue(t, d, creds) == 1 })
	if n := metricValue(t, d, waits); n != 1 {
		t.Fatalf("%v global waits for the credentials check, want 1", n)
	}

	code, body := d.call(t, "GET", "/v1/provider/accounts/acc-marseille", adminToken, nil)
	if code != http.StatusOK {
		t.Fatalf("look-up: %d %s", code, body)
	}
	if n := metricValue(t, d, waits); n != 2 {
		t.Errorf("%v global waits after the look-up, want 2", n)
	}
	if n := metricValue(t, d, lookups); n != 1 {
		t.Errorf("%v accounts_get requests observed, want 1", n)
	}
}

// metricValue reads one series (name and labels as exposed) from /metrics; 0 when absent.
func metricValue(t *testing.T, d *daemon, series string) float64 {
	t.Helper()
	code, body := d.call(t, "GET", "/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}
