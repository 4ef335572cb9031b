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

	"go.uber.org/zap"
)

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
