package attachments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/tasks"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFetch(t *testing.T) {
	body := []byte(strings.Repeat("pdf-bytes-", 100))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok", "/ok-signed":
			_, _ = w.Write(body)
		case "/more":
			w.Header().Set("Content-Length", "")
			_, _ = w.Write(append(body, 'x'))
		case "/chunked-more":
			f := w.(http.Flusher)
			_, _ = w.Write(body)
			f.Flush()
			_, _ = w.Write([]byte("tail"))
		case "/redirect-out":
			http.Redirect(w, r, other.URL+"/ok", http.StatusFound)
		case "/redirect-in":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/500":
			w.WriteHeader(500)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	f, err := New(Options{Origins: []string{srv.URL}, MaxBytes: 4096, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	att := func(path string, size int64, sha string) tasks.Attachment {
		return tasks.Attachment{URL: srv.URL + path, Filename: "a.pdf", ContentType: "application/pdf", Size: size, SHA256: sha}
	}
	good := sum(body)
	n := int64(len(body))
	cases := []struct {
		name string
		a    tasks.Attachment
		kind Kind
	}{
		{"ok", att("/ok", n, good), 0},
		{"ok with query", att("/ok-signed?sig=secret", n, good), 0},
		{"redirect within origin", att("/redirect-in", n, good), 0},
		{"declared smaller than actual", att("/chunked-more", n, good), KindTooLarge},
		{"declared over cap", att("/ok", 5000, good), KindTooLarge},
		{"hash mismatch", att("/ok", n, sum([]byte("other"))), KindHashMismatch},
		{"more bytes than declared", att("/more", n, good), KindTooLarge},
		{"origin not allowed", tasks.Attachment{URL: other.URL + "/ok", Size: n, SHA256: good}, KindOrigin},
		{"redirect out of origin", att("/redirect-out", n, good), KindOrigin},
		{"server error", att("/500", n, good), KindFetch},
		{"not found", att("/missing", n, good), KindFetch},
		{"credentials in url", tasks.Attachment{URL: strings.Replace(srv.URL, "http://", "http://u:p@", 1) + "/ok", Size: n, SHA256: good}, KindOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file, err := f.Fetch(context.Background(), 0, tc.a)
			if KindOf(err) != tc.kind {
				t.Fatalf("kind = %v (%v), want %v", KindOf(err), err, tc.kind)
			}
			if err != nil {
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks the query: %v", err)
				}
				return
			}
			rc, err := file.Attachment().Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != string(body) {
				t.Fatal("content differs")
			}
			Set{file}.Release()
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestFetchAllReleasesOnError(t *testing.T) {
	body := []byte("hello")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	dir := t.TempDir()
	f, err := New(Options{Origins: []string{srv.URL}, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	good := tasks.Attachment{URL: srv.URL + "/a", Filename: "a.txt", Size: 5, SHA256: sum(body)}
	bad := good
	bad.SHA256 = sum([]byte("nope"))
	if _, err := f.FetchAll(context.Background(), []tasks.Attachment{good, good, bad}); KindOf(err) != KindHashMismatch {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	set, err := f.FetchAll(context.Background(), []tasks.Attachment{good, good})
	if err != nil || len(set) != 2 {
		t.Fatal(err)
	}
	set.Release()
	set.Release()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestOriginsValidated(t *testing.T) {
	if _, err := New(Options{Origins: []string{"https://cdn.example.com", "ftp://x", "https://h/path", "nohost"}}); err == nil || strings.Count(err.Error(), "attachment origin") != 3 {
		t.Fatalf("err = %v", err)
	}
	f, _ := New(Options{Origins: []string{"https://CDN.example.com:443"}})
	for u, want := range map[string]bool{
		"https://cdn.example.com/x": true, "https://cdn.example.com:443/x": true,
		"http://cdn.example.com/x": false, "https://cdn.example.com:8443/x": false, "https://evil.com/x": false,
	} {
		pu, _ := url.Parse(u)
		if got := f.Allowed(pu); got != want {
			t.Errorf("%s: allowed = %v", u, got)
		}
	}
}
