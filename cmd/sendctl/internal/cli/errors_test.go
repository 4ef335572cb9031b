package cli

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/tasks"
)

func TestExitCodesByStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		code   int
		stderr []string
	}{
		{"invalid with fields", 400, `{"error":{"code":"invalid_request","message":"invalid send request","fields":[
			{"field":"send_id","code":"required","message":"required"},
			{"field":"attendees_ids[0]","code":"cold_recipient","message":"a raw phone number is not a known attendee"}]}}`,
			exitInvalid, []string{"sendctl: show s-1: invalid request: 2 field error(s):\n",
				"\nsend_id: required\n", "\nattendees_ids[0]: a raw phone number is not a known attendee\n"}},
		{"too large", 413, `{"error":{"code":"body_too_large","message":"body over 64 KiB"}}`, exitInvalid, []string{"request too large: body over 64 KiB"}},
		{"media type", 415, `{"error":{"code":"unsupported_media_type","message":"want application/json"}}`, exitInvalid, []string{"unsupported media type"}},
		{"not found", 404, `{"error":{"code":"not_found","message":"no send s-1"}}`, exitNotFound, []string{"sendctl: show s-1: not found: no send s-1"}},
		{"conflict", 409, `{"error":{"code":"not_pending","message":"send s-1 is approved"}}`, exitConflict, []string{"not pending: send s-1 is approved"}},
		{"conflict without stutter", 409, `{"error":{"code":"not_pending","message":"approve: send s-1: send is not pending approval (state approved)"}}`,
			exitConflict, []string{"sendctl: show s-1: send is not pending approval (state approved)\n"}},
		{"too late", 409, `{"error":{"code":"too_late","message":"already sending"}}`, exitConflict, []string{"too late: already sending"}},
		{"self approval", 403, `{"error":{"code":"self_approval","message":"requester cannot approve"}}`, exitConflict, []string{"self-approval refused"}},
		{"unauthorized", 401, `{"error":{"code":"unauthorized","message":"unknown token"}}`, exitAuth, []string{"unauthorized (HTTP 401): unknown token; check -token"}},
		{"forbidden", 403, `{"error":{"code":"forbidden","message":"approver role required"}}`, exitAuth, []string{"forbidden (HTTP 403): approver role required"}},
		{"internal", 500, `{"error":{"code":"internal","message":"internal error"}}`, exitServer, []string{"server error (HTTP 500): internal error"}},
		{"unavailable no body", 503, ``, exitServer, []string{"server error (HTTP 503): service unavailable"}},
		{"html error page", 502, `<html>bad gateway</html>`, exitServer, []string{"server error (HTTP 502): bad gateway"}},
		{"redirect", 302, ``, exitServer, []string{"check -url"}},
		{"too many requests", 429, ``, exitServer, []string{"unexpected answer (HTTP 429)"}},
		{"echoed token", 401, `{"error":{"code":"unauthorized","message":"token ` + testToken + ` is unknown"}}`, exitAuth, []string{"token <redacted> is unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, always(tc.status, tc.body))
			res := run(t, api.srv.URL, "", "show", "s-1")
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", res.code, tc.code, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout on failure: %q", res.stdout)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
		})
	}
}

func TestNetworkErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		res := run(t, "http://"+addr, "", "stats")
		if res.code != exitServer || !strings.Contains(res.stderr, "sendctl: stats: GET /v1/stats: cannot reach http://"+addr) {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		api := newFakeAPI(t, func(call) reply { <-release; return reply{200, `{}`} })
		defer close(release)
		res := run(t, api.srv.URL, "", "stats", "-timeout", "50ms")
		if res.code != exitServer || !strings.Contains(res.stderr, "no answer from") || !strings.Contains(res.stderr, "within 50ms") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
	t.Run("malformed answer", func(t *testing.T) {
		api := newFakeAPI(t, always(200, `{"counts":"many"}`))
		res := run(t, api.srv.URL, "", "stats")
		if res.code != exitServer || !strings.Contains(res.stderr, "not what sendctl expects") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

func TestTokenSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	writeFile(t, file, "tok-from-file-123\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		auth string // "" = no Authorization header
	}{
		{"env", map[string]string{"SENDCTL_TOKEN": "tok-env-123"}, nil, "Bearer tok-env-123"},
		{"flag beats env", map[string]string{"SENDCTL_TOKEN": "tok-env-123"}, []string{"-token", "tok-flag-123"}, "Bearer tok-flag-123"},
		{"flag after command", nil, []string{"stats", "-token", "tok-flag-123"}, "Bearer tok-flag-123"},
		{"file flag", map[string]string{"SENDCTL_TOKEN": "tok-env-123"}, []string{"-token-file", file}, "Bearer tok-from-file-123"},
		{"file env", map[string]string{"SENDCTL_TOKEN_FILE": file}, nil, "Bearer tok-from-file-123"},
		{"none", nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, always(401, `{"error":{"code":"unauthorized","message":"bad token"}}`))
			env := map[string]string{"SENDCTL_URL": api.srv.URL}
			for k, v := range tc.env {
				env[k] = v
			}
			args := tc.args
			if len(args) == 0 || args[0] != "stats" {
				args = append(append([]string{}, args...), "stats")
			}
			res := runEnv(t, env, "", args...)
			if res.code != exitAuth {
				t.Fatalf("exit %d; stderr %s", res.code, res.stderr)
			}
			for _, secret := range []string{"tok-env-123", "tok-flag-123", "tok-from-file-123"} {
				if strings.Contains(res.stdout+res.stderr, secret) {
					t.Errorf("printed a token: %s%s", res.stdout, res.stderr)
				}
			}
			if got := api.Calls()[0].Auth; got != tc.auth {
				t.Errorf("Authorization %q, want %q", got, tc.auth)
			}
		})
	}
}

func TestTokenNeverInHelp(t *testing.T) {
	for _, args := range [][]string{{"-token", testToken, "-h"}, {"-token", testToken, "help", "list"}, {"list", "-token", testToken, "-h"}} {
		res := run(t, "http://127.0.0.1:1", "", args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "Usage: sendctl") {
			t.Errorf("%v: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.json")
	writeFile(t, badFile, `{"send_id":"s-1","opertion":"chats_messages_send"}`)
	brokenFile := filepath.Join(dir, "broken.json")
	writeFile(t, brokenFile, "{\n  \"send_id\": \"s-1\",\n  \"text\": \"hi\" \"x\"\n}")
	stringsFile := filepath.Join(dir, "ids.json")
	writeFile(t, stringsFile, `["s-1","s-2"]`)
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, "x-token-1234")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"-o", "yaml", "stats"}, `-o "yaml": want table or json`},
		{[]string{"list", "-state", "pending"}, `list: unknown state "pending"; want one of pending_approval, approved`},
		{[]string{"list", "-limit", "5000"}, "list: -limit 5000: want 1..1000"},
		{[]string{"list", "-x"}, "list: flag provided but not defined: -x"},
		{[]string{"list", "-timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{[]string{"show"}, "show: missing SEND_ID"},
		{[]string{"show", "s-1", "s-2"}, `show: unexpected argument "s-2"`},
		{[]string{"approve", "s-1"}, `approve s-1: -digest is required: copy it from "sendctl show s-1"`},
		{[]string{"approve", "s-1", "-digest", "abc123"}, "-digest must be the full 64-hex-digit digest"},
		{[]string{"approve"}, "approve: give SEND_ID -digest D, -f FILE or -from-list"},
		{[]string{"approve", "s-1", "-from-list"}, "exclude each other"},
		{[]string{"approve", "-f", stringsFile}, "want [{\"send_id\""},
		{[]string{"approve", "-from-list", "-state", "approved"}, "-state must be pending_approval"},
		{[]string{"approve", "s-1", "-digest", strings.Repeat("a", 64), "-review", "r.json"}, "approve: -review: only with -from-list"},
		{[]string{"approve", "-from-list"}, "approve: -from-list needs -review FILE"},
		{[]string{"approve", "-from-list", "-yes"}, "-yes would approve sends nobody was shown in full"},
		{[]string{"lsit"}, `unknown command "lsit"; did you mean "list"?`},
		{[]string{"help", "aprove"}, `help: unknown command "aprove"; did you mean "approve"?`},
		{[]string{"enqueue", "-f", brokenFile}, "line 3, column 16: invalid character '\"' after object key:value pair"},
		{[]string{"reject", "s-1"}, "reject: -reason is required"},
		{[]string{"reject", "-reason", "x"}, "reject: missing SEND_ID"},
		{[]string{"cancel"}, "cancel: missing SEND_ID"},
		{[]string{"enqueue"}, "enqueue: give -f FILE"},
		{[]string{"enqueue", "-f", badFile}, `unknown field "opertion"`},
		{[]string{"enqueue", "-f", filepath.Join(dir, "missing.json")}, "missing.json: no such file or directory"},
		{[]string{"enqueue", "-f", badFile, "-text", "hi"}, "-f cannot be combined with -text"},
		{[]string{"enqueue", "-send-id", "s", "-metadata", "[1]"}, "-metadata must be a JSON object"},
		{[]string{"enqueue", "-send-id", "s", "-deadline", "tomorrow"}, `-deadline "tomorrow" is not an RFC 3339 time`},
		{[]string{"enqueue", "-send-id", "s", "-attachment", `{"url":1}`}, "-attachment #1"},
		{[]string{"enqueue", "-f", "-"}, "empty input"},
		{[]string{"pause", "now"}, `pause: unexpected argument "now"`},
		{[]string{"resume", "status"}, `resume: unexpected argument "status"`},
		{[]string{"optout"}, "optout: want add CONTACT_ID"},
		{[]string{"optout", "add"}, "optout add: missing CONTACT_ID"},
		{[]string{"optout", "purge"}, `unknown action "purge"`},
		{[]string{"chats"}, "chats: -account is required"},
		{[]string{"messages"}, "messages: missing CHAT_ID"},
		{[]string{"-token", "a-token-1", "-token-file", tokenFile, "stats"}, "either -token or -token-file"},
		{[]string{"-url", "127.0.0.1:8080", "stats"}, "is not an http(s) URL"},
		{[]string{"-url", "ftp://example.com", "stats"}, `-url "ftp://example.com" is not an http(s) URL`},
		{[]string{"help", "nothing"}, `help: unknown command "nothing"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			api := newFakeAPI(t, always(200, `{}`))
			env := map[string]string{"SENDCTL_TOKEN": testToken}
			args := tc.args
			if !containsArg(args, "-url") {
				args = append([]string{"-url", api.srv.URL}, args...)
			}
			res := runEnv(t, env, "", args...)
			if res.code != exitUsage {
				t.Fatalf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, res.stderr)
			}
			if !strings.HasPrefix(res.stderr, "sendctl: ") && !strings.HasPrefix(res.stderr, "sendctl is") {
				t.Errorf("stderr does not start with the program name:\n%s", res.stderr)
			}
			if n := len(api.Calls()); n != 0 {
				t.Errorf("a usage error still made %d API call(s)", n)
			}
		})
	}
}

func containsArg(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{"help", c.name}, {c.name, "-h"}} {
			res := run(t, "http://127.0.0.1:1", "", args...)
			if res.code != exitOK || !strings.HasPrefix(res.stdout, "Usage: sendctl "+c.name) {
				t.Errorf("%v: exit %d, stdout:\n%s\nstderr:\n%s", args, res.code, res.stdout, res.stderr)
			}
		}
	}
	res := run(t, "http://127.0.0.1:1", "", "help")
	for _, want := range []string{"Exit codes:", "7  bulk command", "SENDCTL_TOKEN", "approve"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestApproveDigestMismatch(t *testing.T) {
	rec := sampleRecord("s-1", tasks.StatePendingApproval)
	changed := rec
	changed.Request.Text = "edited behind the approver's back"
	for _, tc := range []struct {
		name string
		rec  tasks.Record
		want string
	}{
		{"wrong digest", rec, `sendctl: approve s-1: wrong digest: aaaaaaaaaaaa… is not the digest of send s-1 (` + rec.Digest[:12] +
			`…), which has not changed since it was enqueued; copy the DIGEST line of "sendctl show s-1"` + "\n"},
		{"send changed", changed, `sendctl: approve s-1: the send changed since you looked (its digest is now ` + rec.Digest[:12] +
			`…); run "sendctl show s-1" again` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, func(c call) reply {
				if c.Method == http.MethodPost {
					return reply{409, `{"error":{"code":"digest_mismatch","message":"approve: digest is not the send's current digest"}}`}
				}
				return reply{200, mustJSON(t, tc.rec)}
			})
			res := run(t, api.srv.URL, "", "approve", "s-1", "-digest", strings.Repeat("a", 64))
			if res.code != exitConflict || res.stderr != tc.want {
				t.Errorf("exit %d, stderr\n%q\nwant\n%q", res.code, res.stderr, tc.want)
			}
		})
	}
}

func TestShowIsExactAndSafe(t *testing.T) {
	rec := sampleRecord("s-1", tasks.StateSent)
	rec.Request.Text = "Pay here\u202e: evil.com \x1b[2J" + strings.Repeat("x", 300)
	rec.Request.Attachments = []tasks.Attachment{{URL: "https://files.example.com/a.pdf", Filename: "a.pdf",
		ContentType: "application/pdf", Size: 1234, SHA256: strings.Repeat("c", 64)}}
	rec.Approval = &tasks.Decision{By: "alice", At: t0, Digest: rec.Digest}
	rec.Attempts = 1
	rec.Result = &tasks.Result{SendID: "s-1", State: tasks.StateSent, MessageID: "msg-77", ChatID: "chat-1", Attempts: 1, ApprovedBy: "alice", FinishedAt: t0}
	api := newFakeAPI(t, always(200, mustJSON(t, rec)))
	res := run(t, api.srv.URL, "", "show", "s-1")
	if res.code != exitOK {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{strings.Repeat("x", 300), `\u202e`, `\u001b[2J`, "WARNING: the text holds invisible",
		"sha256  " + strings.Repeat("c", 64), "https://files.example.com/a.pdf", "1234 bytes", "message msg-77", "by alice at 2025-06-01T09:00:00Z"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.ContainsAny(res.stdout, "\x1b\u202e") {
		t.Errorf("show printed raw control characters")
	}
	if strings.Contains(res.stdout, "approve with") {
		t.Errorf("show offers to approve a sent send")
	}
}

func TestInterrupted(t *testing.T) {
	api := newFakeAPI(t, always(200, `{}`))
	ctx, cancel := contextCanceled()
	defer cancel()
	var out, errOut strings.Builder
	code := Run(ctx, []string{"-url", api.srv.URL, "stats"}, strings.NewReader(""), &out, &errOut, nil)
	if code != exitServer || !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}
