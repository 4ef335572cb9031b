package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sendworker/sendworker/tasks"
)

func invalid(field, code, msg string) error {
	return &tasks.ValidationError{Fields: []tasks.FieldError{{Field: field, Code: code, Message: msg}}}
}

// readBody applies the body rules of the API: a body must be JSON
// (Content-Type application/json, else 415), at most MaxBodyBytes (else
// 413, without reading more than the cap), present when the route needs one,
// and, on routes that take none, empty or {}.
func (a *api) readBody(w http.ResponseWriter, r *http.Request, kind bodyKind) ([]byte, error) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil, nil
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && !isJSON(ct) {
		return nil, apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "the body must be application/json"}
	}
	if r.ContentLength > a.opts.MaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: a.opts.MaxBodyBytes}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, invalid("body", "unreadable", "the body could not be read")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if kind == bodyRequired {
			return nil, invalid("body", "required", "a JSON body is required")
		}
		return nil, nil
	}
	if ct == "" {
		return nil, apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "Content-Type: application/json is required with a body"}
	}
	if kind == bodyNone {
		if err := decodeStrict(data, &struct{}{}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return data, nil
}

func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// decodeStrict decodes one JSON value into v: unknown fields, trailing data
// and type mismatches are *tasks.ValidationError naming the field.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("body", "invalid_json", "unexpected data after the JSON value")
	}
	return nil
}

// jsonError names the field of a decoding error of v; an unknown field gets
// the nearest field name of v as a hint.
func jsonError(err error, v any) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return invalid(field, "invalid_type", fmt.Sprintf("expected %s, got JSON %s", typeErr.Type, typeErr.Value))
	case errors.As(err, &syntaxErr):
		return invalid("body", "invalid_json", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("body", "invalid_json", "empty or truncated JSON")
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name := strings.Trim(strings.TrimPrefix(msg, unknown), `"`)
		return invalid(name, "unknown_field", tasks.UnknownFieldMessage(name, tasks.JSONFieldNames(v)))
	}
	return invalid("body", "invalid_json", "invalid JSON")
}

// query reads a query string strictly: only the allowed keys, each at most
// once. Unknown or repeated parameters are named in a 400.
type query struct {
	values url.Values
	errs   tasks.ValidationError
}

func parseQuery(r *http.Request, allowed ...string) *query {
	q := &query{}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q.add("query", "invalid", "malformed query string")
	}
	q.values = values
	for k, v := range values {
		switch {
		case !slices.Contains(allowed, k):
			q.add(k, "unknown_field", "unknown query parameter (allowed: "+strings.Join(allowed, ", ")+")")
		case len(v) > 1:
			q.add(k, "duplicate", "given more than once")
		}
	}
	return q
}

func (q *query) add(field, code, msg string) {
	q.errs.Fields = append(q.errs.Fields, tasks.FieldError{Field: field, Code: code, Message: msg})
}

func (q *query) get(key string) string { return q.values.Get(key) }

// limit parses an optional limit in [1, max]; 0 when absent.
func (q *query) limit(max int) int {
	s := q.get("limit")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		q.add("limit", "invalid", fmt.Sprintf("must be a number from 1 to %d", max))
		return 0
	}
	return n
}

// cursor checks an opaque cursor: printable, bounded.
func (q *query) cursor() string {
	s := q.get("cursor")
	if len(s) > 1024 || strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
		q.add("cursor", "invalid", "not a cursor from a previous page")
		return ""
	}
	return s
}

func (q *query) err() error {
	if len(q.errs.Fields) == 0 {
		return nil
	}
	return &q.errs
}
