package provider

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Attachment is a file to send. Open is called once, while the request is being written,
// and the reader it returns is closed before the call returns; the bytes are streamed, never
// held whole in memory.
type Attachment struct {
	Filename    string
	ContentType string // default application/octet-stream
	Open        func() (io.ReadCloser, error)
	// Size is the file's length in bytes, when known (> 0). When every file of a call has one,
	// the body goes out with a Content-Length instead of chunked (the provider does not say
	// whether it accepts chunked multipart bodies); a source that then yields another length
	// fails the call before the body is complete.
	Size int64
}

func (a *Attachment) check(field string) error {
	switch {
	case a.Filename == "":
		return fmt.Errorf("%w: %s needs a Filename", ErrInvalidArgument, field)
	case a.Open == nil:
		return fmt.Errorf("%w: %s needs an Open function", ErrInvalidArgument, field)
	case strings.ContainsAny(a.Filename+a.ContentType, "\r\n\x00"):
		// Both go into part headers, where a line break would forge headers.
		return fmt.Errorf("%w: %s Filename and ContentType must not contain line breaks", ErrInvalidArgument, field)
	}
	return nil
}

// form is a multipart/form-data body: text fields first, then files, in order.
type form struct {
	fields []formField
	files  []formFile
}

type formField struct{ name, value string }

type formFile struct {
	name string // "attachments" or "voice_message"
	att  Attachment
}

func (f *form) add(name, value string) { f.fields = append(f.fields, formField{name, value}) }

func (f *form) addFile(name string, a Attachment) { f.files = append(f.files, formFile{name, a}) }

// errRequestDone stops a producer whose request is over.
var errRequestDone = errors.New("request done")

// stream starts writing the form into a pipe and returns the pipe's reading end, the
// Content-Type with the writer's boundary, the body's length (-1 when a file's size is not
// known) and stop. stop ends the producer if it is still running, waits for it (so no goroutine
// or open attachment outlives the call) and returns the error it stopped on, nil when it wrote
// the whole form.
func (f *form) stream() (body io.Reader, contentType string, length int64, stop func() error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	length = f.length(mw.Boundary())
	done := make(chan error, 1)
	go func() {
		err := f.write(mw)
		// The transport sees err, or EOF when the form is complete.
		pw.CloseWithError(err)
		done <- err
	}()
	stop = func() error {
		// Unblocks a producer stuck writing to a transport that gave up reading.
		pr.CloseWithError(errRequestDone)
		return <-done
	}
	return pr, mw.FormDataContentType(), length, stop
}

// length is the size of the form written with boundary: its framing (fields, part headers,
// closing boundary) written for real, plus each file's Size. -1 when a file's size is unknown.
func (f *form) length(boundary string) int64 {
	var files int64
	for _, ff := range f.files {
		if ff.att.Size <= 0 {
			return -1
		}
		files += ff.att.Size
	}
	var c countingWriter
	mw := multipart.NewWriter(&c)
	if err := mw.SetBoundary(boundary); err != nil {
		return -1
	}
	for _, fl := range f.fields {
		_ = mw.WriteField(fl.name, fl.value)
	}
	for _, ff := range f.files {
		_, _ = mw.CreatePart(fileHeader(ff))
	}
	_ = mw.Close()
	return c.n + files
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// errSizeMismatch: an attachment's source yielded another length than its Size.
var errSizeMismatch = errors.New("the file's length is not its announced size")

// encode returns a form without files whole, with its Content-Type.
func (f *form) encode() ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	// Writing to a bytes.Buffer cannot fail.
	_ = f.write(mw)
	return b.Bytes(), mw.FormDataContentType()
}

func (f *form) write(mw *multipart.Writer) error {
	for _, fl := range f.fields {
		if err := mw.WriteField(fl.name, fl.value); err != nil {
			return err
		}
	}
	for _, ff := range f.files {
		if err := writeFile(mw, ff); err != nil {
			return err
		}
	}
	return mw.Close()
}

// fileHeader is the part header of a file.
func fileHeader(ff formFile) textproto.MIMEHeader {
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", multipart.FileContentDisposition(ff.name, ff.att.Filename))
	contentType := ff.att.ContentType
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	return h
}

func writeFile(mw *multipart.Writer, ff formFile) error {
	src, err := ff.att.Open()
	if err != nil {
		return &attachmentError{field: ff.name, filename: ff.att.Filename, err: err}
	}
	defer src.Close()
	part, err := mw.CreatePart(fileHeader(ff))
	if err != nil {
		return err
	}
	var written int64
	// Copy by hand to tell the source's failures (the attachment's fault) from the
	// destination's (the transport's).
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if written += int64(n); ff.att.Size > 0 && written > ff.att.Size {
			return &attachmentError{field: ff.name, filename: ff.att.Filename, err: errSizeMismatch}
		}
		if n > 0 {
			if _, werr := part.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			if ff.att.Size > 0 && written != ff.att.Size {
				return &attachmentError{field: ff.name, filename: ff.att.Filename, err: errSizeMismatch}
			}
			return nil
		}
		if rerr != nil {
			return &attachmentError{field: ff.name, filename: ff.att.Filename, err: rerr}
		}
	}
}
