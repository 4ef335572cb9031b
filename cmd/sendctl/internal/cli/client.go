package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswerBytes caps how much of an API answer is read.
const maxAnswerBytes = 64 << 20

// client calls the admin API. It never retries: every command is one or a
// few calls a human or script can re-run, and enqueue is idempotent anyway.
type client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	token   string
	timeout time.Duration
	http    *http.Client
}

func newClient(baseURL, token string, timeout time.Duration) (*client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, &usageError{msg: "-url is not an http(s) URL such as http://127.0.0.1:8080"}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{msg: fmt.Sprintf("-url %q is not an http(s) URL such as http://127.0.0.1:8080", u.Redacted())}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, &usageError{msg: "-url must not have a query or fragment"}
	}
	return &client{
		base:    strings.TrimRight(u.String(), "/"),
		token:   token,
		timeout: timeout,
		http: &http.Client{
			Timeout: timeout,
			// A redirect would turn a POST into a GET and may point elsewhere:
			// report it instead of following it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// pathOf joins literal route parts and ids, escaping each id as one path
// segment (chat and contact ids may contain '/' or '@').
func pathOf(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p) // literal, e.g. "/v1/sends/"
		} else {
			b.WriteString(url.PathEscape(p))
		}
	}
	return b.String()
}

// call sends one request and returns the body of a 2xx answer. Failures are
// *apiError (the API answered with an error status) or *transportError.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, int, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, 0, &usageError{msg: fmt.Sprintf("bad request target %s %s", method, path)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sendctl/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, c.transportErr(ctx, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, resp.StatusCode, c.transportErr(ctx, method, path, err)
	}
	if len(data) > maxAnswerBytes {
		return nil, resp.StatusCode, &transportError{msg: fmt.Sprintf("%s %s: answer larger than %d bytes", method, path, maxAnswerBytes)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, decodeAPIError(resp, data)
	}
	return data, resp.StatusCode, nil
}

// getJSON and postJSON call the API and decode its 2xx answer into out,
// returning the raw answer too (for -o json).
func (c *client) getJSON(ctx context.Context, path string, query url.Values, out any) ([]byte, error) {
	data, _, err := c.call(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	return data, decodeAnswer(http.MethodGet, path, data, out)
}

func (c *client) send(ctx context.Context, method, path string, body, out any) ([]byte, int, error) {
	data, status, err := c.call(ctx, method, path, nil, body)
	if err != nil {
		return nil, status, err
	}
	return data, status, decodeAnswer(method, path, data, out)
}

func decodeAnswer(method, path string, data []byte, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &transportError{msg: fmt.Sprintf("%s %s: the server's answer is not what sendctl expects: %v", method, path, err)}
	}
	return nil
}

func (c *client) transportErr(ctx context.Context, method, path string, err error) error {
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return &transportError{msg: fmt.Sprintf("%s %s: interrupted", method, path)}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &transportError{msg: fmt.Sprintf("%s %s: no answer from %s within %s (raise -timeout?)", method, path, c.base, c.timeout)}
	}
	// url.Error repeats the URL; the cause alone is clearer.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &transportError{msg: fmt.Sprintf("%s %s: cannot reach %s: %v", method, path, c.base, err)}
}

// fieldError is one invalid field named by the API.
type fieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorBody is the API's error object: {"error":{"code","message","fields"}}.
type errorBody struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Fields  []fieldError `json:"fields,omitempty"`
}

// apiError is an error status from the API.
type apiError struct {
	Status int
	errorBody
}

func decodeAPIError(resp *http.Response, data []byte) *apiError {
	e := &apiError{Status: resp.StatusCode}
	var env struct {
		Error *errorBody `json:"error"`
	}
	if json.Unmarshal(data, &env) == nil && env.Error != nil {
		e.errorBody = *env.Error
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Code = "redirect"
		e.Message = "the server redirects to " + resp.Header.Get("Location") + "; check -url"
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	return e
}

func (e *apiError) Error() string {
	msg := e.Message
	switch {
	case e.Code == "self_approval":
		return "self-approval refused: you requested this send, so another approver must approve it"
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("unauthorized (HTTP 401): %s; check -token, -token-file or SENDCTL_TOKEN", msg)
	case e.Status == http.StatusForbidden:
		return fmt.Sprintf("forbidden (HTTP 403): %s; your token's role may not do this", msg)
	case e.Status == http.StatusNotFound:
		return "not found: " + msg
	case e.Status == http.StatusConflict:
		msg = stripContext(msg)
		code := strings.ReplaceAll(e.Code, "_", " ")
		if code == "" {
			code = "conflict"
		}
		if strings.Contains(msg, code) || e.Code == "digest_mismatch" {
			// "send is not pending approval" says "not pending" already.
			return msg
		}
		return code + ": " + msg
	case e.Status == http.StatusBadRequest:
		if len(e.Fields) > 0 {
			// The message repeats the fields, printed one per line after it.
			return fmt.Sprintf("invalid request: %d field error(s):", len(e.Fields))
		}
		return "invalid request: " + msg
	case e.Status == http.StatusRequestEntityTooLarge:
		return "request too large: " + msg
	case e.Status == http.StatusUnsupportedMediaType:
		return "unsupported media type: " + msg
	case e.Status >= 500:
		return fmt.Sprintf("server error (HTTP %d): %s", e.Status, msg)
	}
	return fmt.Sprintf("unexpected answer (HTTP %d): %s", e.Status, msg)
}

// stripContext drops the server's "verb: send ID: " prefixes from a
// refusal: sendctl says which command and send already.
func stripContext(msg string) string {
	for {
		verb, rest, ok := strings.Cut(msg, ": ")
		if !ok {
			return msg
		}
		switch {
		case verb == "approve" || verb == "reject" || verb == "cancel":
		case strings.HasPrefix(verb, "send ") && !strings.Contains(verb[5:], " "):
		default:
			return msg
		}
		msg = rest
	}
}

// exitCode is the exit status for an API error (see the package doc).
func (e *apiError) exitCode() int {
	switch {
	case e.Code == "self_approval":
		return exitConflict
	case e.Status == http.StatusBadRequest, e.Status == http.StatusRequestEntityTooLarge,
		e.Status == http.StatusUnsupportedMediaType, e.Status == http.StatusUnprocessableEntity:
		return exitInvalid
	case e.Status == http.StatusNotFound:
		return exitNotFound
	case e.Status == http.StatusConflict:
		return exitConflict
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return exitAuth
	}
	return exitServer
}

// transportError is a failure to get a usable answer: unreachable server,
// timeout, interruption, malformed answer.
type transportError struct{ msg string }

func (e *transportError) Error() string { return e.msg }

// usageError is a mistake in the command line or its input files.
type usageError struct {
	msg string
	cmd string // when set, the error ends with a pointer to "sendctl help <cmd>"
}

func (e *usageError) Error() string { return e.msg }

// partialError says a bulk command had failed items; each was reported.
type partialError struct{ failed, total int }

func (e *partialError) Error() string {
	return fmt.Sprintf("%d of %d item(s) failed", e.failed, e.total)
}
