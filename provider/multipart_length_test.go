package provider

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sync/atomic"
	"testing"
)

// When every file's size is known the form goes out with its exact Content-Length (not
// chunked), and parses the same; a source that yields another length fails the call before the
// body is complete, so the provider never acts on it.
func TestMultipartWithSizesHasLength(t *testing.T) {
	var length, read atomic.Int64
	var files atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		length.Store(r.ContentLength)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		read.Store(int64(len(body)))
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FileName() != "" {
				files.Add(1)
			}
		}
		w.WriteHeader(201)
		io.WriteString(w, `{"object":"MessageSent","message_id":"m1"}`)
	})
	data := bytes.Repeat([]byte("x"), 70_000)
	open := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	_, err := c.SendMessage(context.Background(), "chat", SendMessageParams{Text: "hi", Attachments: []Attachment{
		{Filename: "a.pdf", ContentType: "application/pdf", Open: open(data), Size: int64(len(data))},
		{Filename: "b.txt", Open: open([]byte("b")), Size: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if length.Load() <= int64(len(data)) || length.Load() != read.Load() || files.Load() != 2 {
		t.Fatalf("Content-Length %d, body %d bytes, %d files", length.Load(), read.Load(), files.Load())
	}

	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
		calls := read.Load()
		read.Store(-1)
		_, err = c.SendMessage(context.Background(), "chat", SendMessageParams{Text: "hi", Attachments: []Attachment{
			{Filename: "a.pdf", Open: open(data), Size: size},
		}})
		if !errors.Is(err, errSizeMismatch) || ClassOf(err) == ClassUnknownOutcome {
			t.Fatalf("size %d: %v (%s)", size, err, ClassOf(err))
		}
		if read.Load() > 0 {
			t.Fatalf("size %d: the provider read a complete body (%d bytes; before %d)", size, read.Load(), calls)
		}
	}
}
