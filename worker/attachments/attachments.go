// Package attachments fetches the files of a send before its sending call: only from
// allow-listed origins, within the declared size and the configured cap, streamed to a temporary
// file while hashing, and refused unless the bytes hash to the approved SHA-256.
//
// It exists so that a bad or unreachable attachment is decided before the provider is called:
// a fetch problem is never an unknown outcome. It never sends anything and never keeps a file
// after Release.
package attachments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// Kind says why a fetch was refused; the worker maps each to a reason code.
type Kind int

const (
	// KindOrigin: the URL's origin (scheme, host, port) is not allow-listed. Permanent.
	KindOrigin Kind = iota + 1
	// KindTooLarge: the declared size exceeds the cap, or the server sent more bytes than
	// declared. Permanent.
	KindTooLarge
	// KindHashMismatch: the bytes do not hash to the approved SHA-256. Permanent.
	KindHashMismatch
	// KindFetch: the file could not be fetched (network error, non-2xx status, local disk).
	// May pass later.
	KindFetch
)

func (k Kind) String() string {
	switch k {
	case KindOrigin:
		return "origin_not_allowed"
	case KindTooLarge:
		return "too_large"
	case KindHashMismatch:
		return "hash_mismatch"
	case KindFetch:
		return "fetch_failed"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a refused or failed fetch. Its message names the attachment index and origin, never
// the URL's path or query (which may carry signed tokens).
type Error struct {
	Index  int
	Kind   Kind
	Origin string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("attachment %d (%s): %s: %v", e.Index, e.Origin, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or 0 when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Options configure a Fetcher.
type Options struct {
	// Origins are the allow-listed origins, "https://host[:port]" (http too, for local tests).
	// Empty: every attachment is refused.
	Origins []string
	// MaxBytes caps each file; 0 means the provider's 15 MiB.
	MaxBytes int64
	// HTTPClient is used to fetch; default a client with a 60 s timeout. Redirects are
	// followed only to allow-listed origins.
	HTTPClient *http.Client
	// TempDir holds the files while a send is prepared; default os.TempDir().
	TempDir string
}

// DefaultMaxBytes is the provider's standard attachment cap.
const DefaultMaxBytes = 15 << 20

// Fetcher fetches attachments. It is safe for concurrent use.
type Fetcher struct {
	origins  map[string]bool
	maxBytes int64
	client   *http.Client
	tempDir  string
}

// New checks the origins and returns a Fetcher.
func New(opts Options) (*Fetcher, error) {
	f := &Fetcher{origins: map[string]bool{}, maxBytes: opts.MaxBytes, tempDir: opts.TempDir}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultMaxBytes
	}
	var errs []error
	for _, o := range opts.Origins {
		u, err := url.Parse(strings.TrimSpace(o))
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("attachment origin %q: want scheme://host[:port]", o))
			continue
		}
		f.origins[Origin(u)] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	base := &http.Client{Timeout: 60 * time.Second}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		base = &c
	}
	base.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		if !f.Allowed(req.URL) {
			return &Error{Kind: KindOrigin, Origin: Origin(req.URL), Err: errors.New("redirect to an origin that is not allow-listed")}
		}
		return nil
	}
	f.client = base
	return f, nil
}

// Origin returns the normalised origin of u: lower-case scheme and host, explicit port.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Allowed reports whether u's origin is allow-listed.
func (f *Fetcher) Allowed(u *url.URL) bool {
	if u == nil || u.User != nil {
		return false
	}
	return f.origins[Origin(u)]
}

// File is a fetched attachment on local disk, verified against its approved hash.
type File struct {
	Filename    string
	ContentType string
	Size        int64
	SHA256      string
	path        string
}

// Attachment returns the file as the provider client streams it.
func (f *File) Attachment() provider.Attachment {
	return provider.Attachment{
		Filename:    f.Filename,
		ContentType: f.ContentType,
		Size:        f.Size,
		Open:        func() (io.ReadCloser, error) { return os.Open(f.path) },
	}
}

// Set is the fetched files of one send. Release removes them; it is safe to call on nil and
// more than once.
type Set []*File

// Release removes the temporary files.
func (s Set) Release() {
	for _, f := range s {
		if f != nil && f.path != "" {
			_ = os.Remove(f.path)
		}
	}
}

// Attachments returns the files for the provider client.
func (s Set) Attachments() []provider.Attachment {
	out := make([]provider.Attachment, 0, len(s))
	for _, f := range s {
		out = append(out, f.Attachment())
	}
	return out
}

// FetchAll fetches every attachment in order. On any error the files already fetched are
// removed and the error (an *Error) is returned.
func (f *Fetcher) FetchAll(ctx context.Context, atts []tasks.Attachment) (Set, error) {
	set := make(Set, 0, len(atts))
	for i, a := range atts {
		file, err := f.Fetch(ctx, i, a)
		if err != nil {
			set.Release()
			return nil, err
		}
		set = append(set, file)
	}
	return set, nil
}

// Fetch fetches one attachment (index i of the send, for messages).
func (f *Fetcher) Fetch(ctx context.Context, i int, a tasks.Attachment) (*File, error) {
	u, err := url.Parse(a.URL)
	if err != nil || u.Host == "" {
		return nil, &Error{Index: i, Kind: KindOrigin, Origin: "invalid", Err: errors.New("not an absolute URL")}
	}
	origin := Origin(u)
	fail := func(kind Kind, err error) (*File, error) {
		return nil, &Error{Index: i, Kind: kind, Origin: origin, Err: err}
	}
	if !f.Allowed(u) {
		return fail(KindOrigin, errors.New("origin is not allow-listed"))
	}
	if a.Size <= 0 {
		return fail(KindTooLarge, errors.New("declared size must be positive"))
	}
	if a.Size > f.maxBytes {
		return fail(KindTooLarge, fmt.Errorf("declared size %d exceeds the cap of %d bytes", a.Size, f.maxBytes))
	}
	want, err := hex.DecodeString(a.SHA256)
	if err != nil || len(want) != sha256.Size {
		return fail(KindHashMismatch, errors.New("approved sha256 is not 64 hex characters"))
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(KindFetch, errors.New("cannot build request"))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Index = i
			return nil, e
		}
		return fail(KindFetch, redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail(KindFetch, fmt.Errorf("status %d", resp.StatusCode))
	}
	if resp.ContentLength > a.Size {
		return fail(KindTooLarge, fmt.Errorf("server announces %d bytes, %d declared", resp.ContentLength, a.Size))
	}

	tmp, err := os.CreateTemp(f.tempDir, "sendworker-att-*")
	if err != nil {
		return fail(KindFetch, fmt.Errorf("temp file: %w", err))
	}
	keep := false
	defer func() {
		if !keep {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	// One byte more than declared tells "too large" from "exactly the size".
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, a.Size+1))
	if err != nil {
		return fail(KindFetch, redact(err))
	}
	if n > a.Size {
		return fail(KindTooLarge, fmt.Errorf("more than the %d bytes declared", a.Size))
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fail(KindHashMismatch, errors.New("sha256 of the bytes differs from the approved one"))
	}
	if err := tmp.Close(); err != nil {
		return fail(KindFetch, fmt.Errorf("temp file: %w", err))
	}
	keep = true
	return &File{Filename: a.Filename, ContentType: a.ContentType, Size: n, SHA256: a.SHA256, path: tmp.Name()}, nil
}

// redact drops the URL from a transport error: signed URLs carry secrets in their query.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
