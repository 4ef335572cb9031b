package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

var testDigest = strings.Repeat("ab", 32)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func zapString(k, v string) zap.Field { return zap.String(k, v) }

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newFileServer(t *testing.T) *httptest.Server {
	good := []byte(strings.Repeat("%PDF-", 1000))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/offer.pdf":
			_, _ = w.Write(good)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// leftoverTempFiles counts attachment temp files in the temp dir (only TestAttachments
// fetches attachments in this package).
func leftoverTempFiles(t *testing.T) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), "sendworker-att-*"))
	return len(m)
}
