package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestClient starts handler on httptest and returns a client for it whose read-retry
// waits are recorded instead of slept.
func newTestClient(t *testing.T, handler http.HandlerFunc, tweak ...func(*Options)) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	opts := Options{BaseURL: srv.URL, APIKey: "key-123", Timeout: 5 * time.Second}
	for _, f := range tweak {
		f(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return ctx.Err()
	}
	return c, waits
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	return e
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no base", Options{APIKey: "k"}, "BaseURL is required"},
		{"bad scheme", Options{BaseURL: "ftp://x", APIKey: "k"}, "http or https"},
		{"no host", Options{BaseURL: "http://", APIKey: "k"}, "no host"},
		{"credentials", Options{BaseURL: "https://u:p@x", APIKey: "k"}, "credentials"},
		{"api prefix", Options{BaseURL: "https://x/api/v1/", APIKey: "k"}, "must not end in /api/v1"},
		{"no auth", Options{BaseURL: "https://x"}, "exactly one of"},
		{"two auths", Options{BaseURL: "https://x", APIKey: "k", NoAuth: true}, "exactly one of"},
		{"oauth fields", Options{BaseURL: "https://x", OAuth: &OAuthOptions{}}, "OAuth.TokenURL is required"},
		{"oauth client", Options{BaseURL: "https://x", OAuth: &OAuthOptions{TokenURL: "https://x/t"}}, "OAuth.ClientID is required"},
		{"negative timeout", Options{BaseURL: "https://x", APIKey: "k", Timeout: -1}, "Timeout"},
		{"header injection", Options{BaseURL: "https://x", APIKey: "k\r\nX: y"}, "line breaks"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	// Every problem at once.
	_, err := New(Options{Timeout: -1})
	if err == nil || !strings.Contains(err.Error(), "BaseURL") || !strings.Contains(err.Error(), "Timeout") || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("want all problems, got %v", err)
	}
	c, err := New(Options{BaseURL: "https://api1.unipile.com:13443/", NoAuth: true})
	if err != nil || c.base != "https://api1.unipile.com:13443/api/v1" || c.timeout != 30*time.Second || c.readRetries != 2 {
		t.Errorf("defaults: %v %+v", err, c)
	}
	c, _ = New(Options{BaseURL: "http://x/tenant", NoAuth: true, ReadRetries: -1})
	if c.base != "http://x/tenant/api/v1" || c.readRetries != 0 {
		t.Errorf("base %q retries %d", c.base, c.readRetries)
	}
	s := fmt.Sprintf("%v %+v %#v", Options{BaseURL: "https://x", APIKey: "super-secret"}, Options{APIKey: "super-secret"}, &Options{APIKey: "super-secret"})
	if strings.Contains(s, "super-secret") || strings.Contains(s, "s3cr3t") {
		t.Errorf("Options.String leaks: %s", s)
	}
	if s := fmt.Sprintf("%v %#v", OAuthOptions{ClientSecret: "s3cr3t", RefreshToken: "r3fr3sh"}, &OAuthOptions{ClientSecret: "s3cr3t"}); strings.Contains(s, "s3cr3t") || strings.Contains(s, "r3fr3sh") {
		t.Errorf("OAuthOptions.String leaks: %s", s)
	}
}

func TestRequestShape(t *testing.T) {
	var got *http.Request
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"object":"ChatList","items":[],"cursor":null}`)
	}, func(o *Options) { o.UserAgent = "test-agent" })
	unread := false
	before := time.Date(2026, 11, 24, 11, 0, 0, 5e6, time.FixedZone("x", 3600))
	_, err := c.ListChats(context.Background(), ListChatsParams{AccountID: "acc 1", Unread: &unread, Before: before, Limit: 250, Cursor: "c/1"})
	if err != nil {
		t.Fatal(err)
	}
	q := got.URL.Query()
	if got.URL.Path != "/api/v1/chats" || q.Get("account_type") != "WHATSAPP" || q.Get("account_id") != "acc 1" ||
		q.Get("unread") != "false" || q.Get("before") != "2026-11-24T10:00:00.005Z" || q.Has("after") ||
		q.Get("limit") != "250" || q.Get("cursor") != "c/1" {
		t.Errorf("query: %s %s", got.URL.Path, got.URL.RawQuery)
	}
	if got.Header.Get("X-API-KEY") != "key-123" || got.Header.Get("User-Agent") != "test-agent" || got.Header.Get("Accept") != "application/json" {
		t.Errorf("headers: %v", got.Header)
	}

	// Ids are escaped segment by segment.
	_, _ = c.GetChat(context.Background(), "336/00@s.whatsapp.net", "acc")
	if got.URL.EscapedPath() != "/api/v1/chats/336%2F00@s.whatsapp.net" || got.URL.Query().Get("account_id") != "acc" {
		t.Errorf("escaped path %q (err %v)", got.URL.EscapedPath(), err)
	}
	_, _ = c.GetChat(context.Background(), "c1", "")
	if got.URL.RawQuery != "" {
		t.Errorf("account_id must be omitted when empty: %q", got.URL.RawQuery)
	}

	_, _ = c.SyncAccount(context.Background(), "acc", SyncParams{ChunkSize: 10, Partial: true, After: time.UnixMilli(1795514400123)})
	q = got.URL.Query()
	if got.URL.Path != "/api/v1/accounts/acc/sync" || q.Get("chunk_size") != "10" || q.Get("partial") != "true" || q.Get("after") != "1795514400123" || q.Has("before") {
		t.Errorf("sync query: %s", got.URL.RawQuery)
	}
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	ctx := context.Background()
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
	errs := []error{
		func() error { _, err := c.GetAccount(ctx, ""); return err }(),
		func() error { _, err := c.GetChat(ctx, "..", ""); return err }(),
		func() error { _, err := c.ListChats(ctx, ListChatsParams{Limit: 251}); return err }(),
		func() error { _, err := c.ListMessages(ctx, "c", ListMessagesParams{Limit: -1}); return err }(),
		func() error { _, err := c.SendMessage(ctx, "", SendMessageParams{Text: "x"}); return err }(),
		func() error { _, err := c.SendMessage(ctx, "c", SendMessageParams{}); return err }(),
		func() error {
			_, err := c.SendMessage(ctx, "c", SendMessageParams{Attachments: []Attachment{{Filename: "a\r\nX-Evil: 1", Open: open}}})
			return err
		}(),
		func() error {
			_, err := c.SendMessage(ctx, "c", SendMessageParams{Attachments: []Attachment{{Filename: "a"}}})
			return err
		}(),
		func() error { _, err := c.StartChat(ctx, StartChatParams{AccountID: "a", Text: "x"}); return err }(),
		func() error {
			_, err := c.StartChat(ctx, StartChatParams{AttendeeIDs: []string{"x"}, Text: "x"})
			return err
		}(),
		c.AddReaction(ctx, "m", ""),
		c.EditMessage(ctx, "m", ""),
		c.DeleteMessage(ctx, ""),
	}
	for i, err := range errs {
		if !errors.Is(err, ErrInvalidArgument) || ClassOf(err) != ClassPermanent {
			t.Errorf("%d: %v", i, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests went out", hits.Load())
	}
}

func TestGarbageErrorBodies(t *testing.T) {
	for _, body := range []string{"", "<html><h1>502 Bad Gateway</h1></html>", `{"type":`, "\x00\xff\xfe", `[]`, `{"status":"nope"}`} {
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, body)
		})
		_, err := c.GetAccount(context.Background(), "acc")
		e := asError(t, err)
		if e.Status != 400 || e.Class != ClassPermanent || e.Problem != nil || !errors.Is(err, ErrStatus) {
			t.Errorf("body %q: %+v", body, e)
		}
	}
}

func TestGarbageSuccessBodies(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, "<html>maintenance</html>")
	})
	ctx := context.Background()
	_, err := c.GetAccount(ctx, "acc")
	if e := asError(t, err); !errors.Is(err, ErrDecode) || e.Class != ClassPermanent {
		t.Errorf("read: %v", err)
	}
	_, err = c.ListMessages(ctx, "c", ListMessagesParams{})
	if !errors.Is(err, ErrDecode) {
		t.Errorf("list: %v", err)
	}
	// The provider accepted the send: that is the fact, whatever the body says.
	sent, err := c.SendMessage(ctx, "c", SendMessageParams{Text: "hi"})
	if err != nil || sent.MessageID != nil {
		t.Errorf("send: %+v %v", sent, err)
	}
}

func TestBodyCap(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"Account","name":"`+strings.Repeat("x", 2000)+`"}`)
	})
	c.maxBody = 1000
	_, err := c.GetAccount(context.Background(), "acc")
	if !errors.Is(err, ErrBodyTooLarge) || ClassOf(err) != ClassPermanent {
		t.Errorf("got %v", err)
	}
}

func TestProblemAndRetryAfter(t *testing.T) {
	c, waits := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/accounts/gone":
			w.WriteHeader(401)
			io.WriteString(w, `{"title":"Disconnected account","detail":"The account appears to be disconnected","type":"errors/disconnected_account","status":401}`)
		case "/api/v1/accounts/slow":
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(429)
			io.WriteString(w, `{"type":"errors/too_many_requests","status":429}`)
		case "/api/v1/accounts/dated":
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(429)
		default:
			w.WriteHeader(429)
		}
	})
	ctx := context.Background()
	_, err := c.GetAccount(ctx, "gone")
	if e := asError(t, err); e.Class != ClassPermanent || SlugOf(err) != SlugDisconnectedAccount || e.Problem.Detail == "" {
		t.Errorf("disconnected: %+v", e)
	}
	if strings.Contains(err.Error(), "appears") {
		t.Errorf("Error() must not carry the detail: %s", err)
	}

	_, err = c.GetAccount(ctx, "slow")
	if e := asError(t, err); e.Class != ClassRateLimited || e.RetryAfter != 2*time.Second {
		t.Errorf("429: %+v", e)
	}
	if len(*waits) != 2 || (*waits)[0] != 2*time.Second {
		t.Errorf("reads honour Retry-After: waits %v", *waits)
	}

	*waits = nil
	_, err = c.GetAccount(ctx, "dated")
	if e := asError(t, err); e.Class != ClassRateLimited || e.RetryAfter < 59*time.Minute {
		t.Errorf("429 dated: %+v", e)
	}
	if len(*waits) != 0 {
		t.Errorf("a long Retry-After goes back to the caller, not waited for: %v", *waits)
	}

	*waits = nil
	_, err = c.GetAccount(ctx, "bare")
	if e := asError(t, err); e.Class != ClassRateLimited || e.RetryAfter != 0 {
		t.Errorf("429 bare: %+v", e)
	}
	if len(*waits) != 2 || (*waits)[0] <= 0 || (*waits)[0] > c.retryBase || (*waits)[1] > 2*c.retryBase {
		t.Errorf("backoff without Retry-After: %v", *waits)
	}
}

func TestReadRetriesButSendsDoNot(t *testing.T) {
	var reads, sends atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if reads.Add(1) < 3 {
				w.WriteHeader(503)
				return
			}
			io.WriteString(w, `{"object":"Account","id":"acc","sources":[{"id":"s","status":"OK"}]}`)
			return
		}
		sends.Add(1)
		w.WriteHeader(503)
	})
	ctx := context.Background()
	acc, err := c.GetAccount(ctx, "acc")
	if err != nil || !acc.Healthy() || reads.Load() != 3 {
		t.Fatalf("read after two 503: %v, %d requests", err, reads.Load())
	}
	for _, call := range []func() error{
		func() error { _, err := c.SendMessage(ctx, "c", SendMessageParams{Text: "hi"}); return err },
		func() error {
			_, err := c.StartChat(ctx, StartChatParams{AccountID: "a", AttendeeIDs: []string{"x"}, Text: "hi"})
			return err
		},
		func() error { return c.AddReaction(ctx, "m", "👍") },
		func() error { return c.EditMessage(ctx, "m", "new") },
		func() error { return c.DeleteMessage(ctx, "m") },
	} {
		if err := call(); ClassOf(err) != ClassTransient {
			t.Errorf("send 503: %v", err)
		}
	}
	if sends.Load() != 5 {
		t.Errorf("5 sending calls made %d requests", sends.Load())
	}

	// Permanent errors are not retried either.
	reads.Store(0)
	c2, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { reads.Add(1); w.WriteHeader(404) })
	if _, err := c2.GetChat(ctx, "c", ""); ClassOf(err) != ClassPermanent || reads.Load() != 1 {
		t.Errorf("404: %v after %d requests", err, reads.Load())
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	_, err := c.SendMessage(context.Background(), "c", SendMessageParams{Text: "hi"})
	if e := asError(t, err); e.Status != 302 || e.Class != ClassPermanent || hits.Load() != 1 {
		t.Errorf("redirect: %+v after %d requests", e, hits.Load())
	}
}

// hijackAfterBody reads the whole request, then drops the connection without answering:
// the provider got the message, we got nothing.
func hijackAfterBody(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestConnectionLostAfterWrite(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		hijackAfterBody(w, r)
	})
	ctx := context.Background()
	open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("bytes")), nil }
	for name, call := range map[string]func() error{
		"send": func() error {
			_, err := c.SendMessage(ctx, "c", SendMessageParams{Text: "hi", Attachments: []Attachment{{Filename: "f.txt", Open: open}}})
			return err
		},
		"create": func() error {
			_, err := c.StartChat(ctx, StartChatParams{AccountID: "a", AttendeeIDs: []string{"x"}, Text: "hi"})
			return err
		},
		"reaction": func() error { return c.AddReaction(ctx, "m", "👍") },
		"edit":     func() error { return c.EditMessage(ctx, "m", "new") },
		"delete":   func() error { return c.DeleteMessage(ctx, "m") },
	} {
		hits.Store(0)
		err := call()
		if e := asError(t, err); e.Class != ClassUnknownOutcome || e.Status != 0 || hits.Load() != 1 {
			t.Errorf("%s: %+v after %d requests", name, e, hits.Load())
		}
	}
	hits.Store(0)
	_, err := c.GetAccount(ctx, "acc")
	if ClassOf(err) != ClassTransient || hits.Load() != 3 {
		t.Errorf("read: %v after %d requests", err, hits.Load())
	}
}

func TestConnectionLostBeforeWrite(t *testing.T) {
	// The server drops the connection as soon as it has the headers, while the client is
	// still streaming a large attachment: the request never completed, nothing can have
	// been sent.
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	big := bytes.Repeat([]byte("x"), 16<<20)
	_, err := c.SendMessage(context.Background(), "c", SendMessageParams{Attachments: []Attachment{{
		Filename: "big.bin",
		Open:     func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(big)), nil },
	}}})
	if e := asError(t, err); e.Class != ClassTransient {
		t.Errorf("got %+v", e)
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var hits atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(o *Options) { o.Timeout = 100 * time.Millisecond })
	ctx := context.Background()
	_, err := c.SendMessage(ctx, "c", SendMessageParams{Text: "hi"})
	if e := asError(t, err); e.Class != ClassUnknownOutcome || !errors.Is(err, context.DeadlineExceeded) || hits.Load() != 1 {
		t.Errorf("send timeout: %+v after %d", e, hits.Load())
	}
	hits.Store(0)
	_, err = c.GetAccount(ctx, "acc")
	if e := asError(t, err); e.Class != ClassTransient || hits.Load() != 3 {
		t.Errorf("read timeout: %+v after %d", e, hits.Load())
	}

	// The caller's own deadline, after the request went out, is just as unknown.
	hits.Store(0)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = c.DeleteMessage(cctx, "m")
	if ClassOf(err) != ClassUnknownOutcome || hits.Load() != 1 {
		t.Errorf("delete with caller deadline: %v", err)
	}

	// A context already done sends nothing.
	hits.Store(0)
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	_, err = c.SendMessage(done, "c", SendMessageParams{Text: "hi"})
	if ClassOf(err) != ClassTransient || !errors.Is(err, context.Canceled) || hits.Load() != 0 {
		t.Errorf("canceled before: %v, %d requests", err, hits.Load())
	}
}

func TestMultipartStreamed(t *testing.T) {
	type part struct {
		name, filename, contentType, sum string
		size                             int
	}
	var mu sync.Mutex
	var parts []part
	var reqContentType string
	var reqLength int64
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reqContentType, reqLength = r.Header.Get("Content-Type"), r.ContentLength
		_, params, err := mime.ParseMediaType(reqContentType)
		if err != nil {
			w.WriteHeader(415)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			data, _ := io.ReadAll(p)
			sum := sha256.Sum256(data)
			pp := part{name: p.FormName(), filename: p.FileName(), contentType: p.Header.Get("Content-Type"), size: len(data)}
			if pp.filename == "" {
				pp.sum = string(data)
			} else {
				pp.sum = hex.EncodeToString(sum[:])
			}
			parts = append(parts, pp)
		}
		w.WriteHeader(201)
		io.WriteString(w, `{"object":"ChatStarted","chat_id":"c9","message_id":"m9"}`)
	})
	var opened, closed atomic.Int32
	file := func(data []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) {
			opened.Add(1)
			return closeCounter{Reader: bytes.NewReader(data), n: &closed}, nil
		}
	}
	a := bytes.Repeat([]byte("a"), 100_000)
	b := []byte("second file")
	sumA, sumB := sha256.Sum256(a), sha256.Sum256(b)
	started, err := c.StartChat(context.Background(), StartChatParams{
		AccountID:    "acc",
		AttendeeIDs:  []string{"33600000001@s.whatsapp.net", "33600000002@s.whatsapp.net"},
		Text:         "hello",
		Attachments:  []Attachment{{Filename: "a.png", ContentType: "image/png", Open: file(a)}, {Filename: `b "quoted".txt`, Open: file(b)}},
		VoiceMessage: &Attachment{Filename: "v.ogg", ContentType: "audio/ogg", Open: file([]byte("ogg"))},
	})
	if err != nil || *started.ChatID != "c9" || *started.MessageID != "m9" {
		t.Fatalf("StartChat: %+v %v", started, err)
	}
	if !strings.HasPrefix(reqContentType, "multipart/form-data; boundary=") || reqLength != -1 {
		t.Errorf("content type %q, length %d (want streamed, unknown length)", reqContentType, reqLength)
	}
	want := []part{
		{name: "account_id", sum: "acc"},
		{name: "attendees_ids", sum: "33600000001@s.whatsapp.net"},
		{name: "attendees_ids", sum: "33600000002@s.whatsapp.net"},
		{name: "text", sum: "hello"},
		{name: "attachments", filename: "a.png", contentType: "image/png", size: len(a), sum: hex.EncodeToString(sumA[:])},
		{name: "attachments", filename: `b "quoted".txt`, contentType: "application/octet-stream", size: len(b), sum: hex.EncodeToString(sumB[:])},
		{name: "voice_message", filename: "v.ogg", contentType: "audio/ogg", size: 3},
	}
	for i := range want {
		if want[i].filename == "" {
			continue
		}
		if want[i].name == "voice_message" {
			s := sha256.Sum256([]byte("ogg"))
			want[i].sum = hex.EncodeToString(s[:])
		}
	}
	for i := range parts {
		if parts[i].filename == "" {
			parts[i].contentType, parts[i].size = "", 0
		}
	}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("parts:\n got %v\nwant %v", parts, want)
	}
	if opened.Load() != 3 || closed.Load() != 3 {
		t.Errorf("opened %d, closed %d; want 3 and 3", opened.Load(), closed.Load())
	}
}

// A form without files is small: it goes out whole, with its length (one write, not a chunk
// per part), and reads the same.
func TestMultipartWithoutFilesHasLength(t *testing.T) {
	var got struct {
		length int64
		fields [][2]string
	}
	var mu sync.Mutex
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got.length = r.ContentLength
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			w.WriteHeader(400)
			return
		}
		for _, k := range []string{"account_id", "text"} {
			for _, v := range r.MultipartForm.Value[k] {
				got.fields = append(got.fields, [2]string{k, v})
			}
		}
		w.WriteHeader(201)
		io.WriteString(w, `{"object":"MessageSent","message_id":"m1"}`)
	})
	text := "Hello \"Ann\"\r\n--boundary-like line\nbye ✓"
	sent, err := c.SendMessage(context.Background(), "chat-1", SendMessageParams{AccountID: "acc", Text: text})
	if err != nil || sent.MessageID == nil || *sent.MessageID != "m1" {
		t.Fatalf("SendMessage: %+v %v", sent, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := [][2]string{{"account_id", "acc"}, {"text", text}}
	if got.length <= 0 || fmt.Sprint(got.fields) != fmt.Sprint(want) {
		t.Fatalf("length %d, fields %q; want a known length and %q", got.length, got.fields, want)
	}
}

type closeCounter struct {
	io.Reader
	n *atomic.Int32
}

func (c closeCounter) Close() error { c.n.Add(1); return nil }

func TestAttachmentFailure(t *testing.T) {
	var complete atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err == nil {
			complete.Add(1)
		}
		w.WriteHeader(400)
	})
	boom := errors.New("disk on fire")
	ctx := context.Background()
	_, err := c.SendMessage(ctx, "c", SendMessageParams{Text: "x", Attachments: []Attachment{{
		Filename: "a", Open: func() (io.ReadCloser, error) { return nil, boom },
	}}})
	if !errors.Is(err, boom) || ClassOf(err) != ClassPermanent {
		t.Errorf("open failure: %v", err)
	}
	_, err = c.SendMessage(ctx, "c", SendMessageParams{Text: "x", Attachments: []Attachment{{
		Filename: "a", Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader("some bytes"), errReader{boom})), nil
		},
	}}})
	if !errors.Is(err, boom) || ClassOf(err) != ClassPermanent {
		t.Errorf("read failure: %v", err)
	}
	if complete.Load() != 0 {
		t.Errorf("the provider must never see a complete form when an attachment fails")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestErrorsCarryNoSecrets(t *testing.T) {
	const key, text = "key-very-secret", "private message text"
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"type":"errors/too_many_characters","title":"Too many characters","detail":"%s is too long; key %s"}`, text, key)
	}, func(o *Options) { o.APIKey = key })
	_, err := c.SendMessage(context.Background(), "c", SendMessageParams{Text: text})
	if err == nil || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), text) {
		t.Errorf("error leaks: %v", err)
	}
	err = c.EditMessage(context.Background(), "m", text)
	if err == nil || strings.Contains(err.Error(), text) {
		t.Errorf("error leaks: %v", err)
	}
}

func TestIterators(t *testing.T) {
	var requests atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Query().Get("cursor") {
		case "":
			io.WriteString(w, `{"object":"MessageList","items":[{"id":"m1"},{"id":"m2"}],"cursor":"p2"}`)
		case "p2":
			io.WriteString(w, `{"object":"MessageList","items":[{"id":"m3"}],"cursor":"p3"}`)
		case "p3":
			io.WriteString(w, `{"object":"MessageList","items":[],"cursor":"p4"}`)
		case "p4":
			io.WriteString(w, `{"object":"MessageList","items":[{"id":"m4"}]}`)
		case "loop":
			io.WriteString(w, `{"object":"MessageList","items":[{"id":"x"}],"cursor":"loop"}`)
		}
	})
	ctx := context.Background()
	var ids []string
	for m, err := range c.Messages(ctx, "c", ListMessagesParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "m1,m2,m3,m4" || requests.Load() != 4 {
		t.Errorf("got %v in %d requests", ids, requests.Load())
	}

	requests.Store(0)
	for m := range c.Messages(ctx, "c", ListMessagesParams{}) {
		if m.ID == "m2" {
			break
		}
	}
	if requests.Load() != 1 {
		t.Errorf("breaking early must stop fetching: %d requests", requests.Load())
	}

	var last error
	n := 0
	for _, err := range c.Messages(ctx, "c", ListMessagesParams{Cursor: "loop"}) {
		n++
		last = err
	}
	if !errors.Is(last, ErrDecode) || n != 2 {
		t.Errorf("a repeated cursor must end the iteration with an error: %v after %d", last, n)
	}
}
