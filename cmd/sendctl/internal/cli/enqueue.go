package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sendworker/sendworker/tasks"
)

// maxInputBytes caps an input file (-f).
const maxInputBytes = 64 << 20

const enqueueDetails = `
From a file: -f FILE holds one send request (the JSON of docs/PRODUCT.md), or a batch:
{"sends":[...]} or a JSON array of requests. -f - reads standard input.
Batches over 500 sends are split into several calls.

From flags: -send-id, -op and -account, then what the operation needs:
  chats_messages_send (alias send):  -chat, -text and/or -attachment
  chats_create        (alias create): -attendee (provider attendee id), -text
  messages_reaction   (alias react):  -message, -reaction
  messages_edit       (alias edit):   -message, -text
  messages_delete     (alias delete): -message
The server validates the request and names every bad field (exit 2).`

var opAliases = map[string]tasks.Operation{
	"send": tasks.OpSendMessage, "create": tasks.OpCreateChat, "react": tasks.OpReaction,
	"reaction": tasks.OpReaction, "edit": tasks.OpEdit, "delete": tasks.OpDelete,
}

// readInput reads -f FILE, "-" meaning standard input.
func (a *app) readInput(cmd, name string) ([]byte, error) {
	var (
		data []byte
		err  error
	)
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(a.stdin, maxInputBytes+1))
	} else {
		var f *os.File
		f, err = os.Open(name)
		if err == nil {
			data, err = io.ReadAll(io.LimitReader(f, maxInputBytes+1))
			f.Close()
		}
	}
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("%s: %v", cmd, pathErr(err))}
	}
	if len(data) > maxInputBytes {
		return nil, &usageError{msg: fmt.Sprintf("%s: %s is larger than %d bytes", cmd, name, maxInputBytes)}
	}
	return data, nil
}

// decodeStrict decodes exactly one JSON value, refusing unknown fields so a
// typo in a file is caught before anything is sent.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonErrorAt says where in data a JSON decoding error is: "line L, column
// C: ..." for a syntax or type error, the error's text otherwise.
func jsonErrorAt(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(data))
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	// The offset is just after the byte that failed: point at that byte.
	if off > 0 {
		off--
	}
	line, col := 1, 1
	for _, r := range string(data[:off]) {
		if r == '\n' {
			line, col = line+1, 1
			continue
		}
		col++
	}
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// parseSendFile reads a send request, {"sends":[...]} or an array.
func parseSendFile(data []byte) (reqs []tasks.SendRequest, batch bool, err error) {
	defer func() {
		if err != nil {
			err = errors.New(jsonErrorAt(data, err))
		}
	}()
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, false, errors.New("empty input")
	case trimmed[0] == '[':
		err = decodeStrict(data, &reqs)
		return reqs, true, err
	case trimmed[0] == '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, false, err
		}
		if _, ok := probe["sends"]; ok && len(probe) == 1 {
			var b struct {
				Sends []tasks.SendRequest `json:"sends"`
			}
			err = decodeStrict(data, &b)
			return b.Sends, true, err
		}
		var req tasks.SendRequest
		err = decodeStrict(data, &req)
		return []tasks.SendRequest{req}, false, err
	}
	return nil, false, errors.New("want a JSON object or array")
}

func (a *app) cmdEnqueue(ctx context.Context, args []string) error {
	fs := a.newFlags("enqueue")
	file := fs.String("f", "", "read the send request(s) from `FILE` (- = standard input)")
	sendID := fs.String("send-id", "", "send id: the idempotency key")
	op := fs.String("op", "", "`operation`: chats_messages_send, chats_create, messages_reaction, messages_edit, messages_delete")
	account := fs.String("account", "", "account id")
	chat := fs.String("chat", "", "chat id")
	var attendees stringsFlag
	fs.Var(&attendees, "attendee", "attendee provider `id` (repeatable)")
	message := fs.String("message", "", "message `id` to react to, edit or delete")
	text := fs.String("text", "", "message text")
	textFile := fs.String("text-file", "", "read the message text from `FILE` (- = standard input)")
	reaction := fs.String("reaction", "", "reaction emoji")
	var attachments stringsFlag
	fs.Var(&attachments, "attachment", "attachment as `JSON` {\"url\",\"filename\",\"content_type\",\"size\",\"sha256\"} (repeatable)")
	metadata := fs.String("metadata", "", "metadata `JSON` object, echoed in every result")
	deadline := fs.String("deadline", "", "approval deadline, `RFC3339`")
	stopIfReplied := fs.String("stop-if-replied-since", "", "skip if the contact wrote after this `RFC3339` time")
	notBefore := fs.String("not-before", "", "window: not before this `RFC3339` time")
	notAfter := fs.String("not-after", "", "window: expire after this `RFC3339` time")
	timezone := fs.String("timezone", "", "window: recipient's IANA time `zone`")
	days := fs.String("days", "", "window: allowed `days`, e.g. mon,tue,wed")
	from := fs.String("from", "", "window: daily start `HH:MM`")
	to := fs.String("to", "", "window: daily end `HH:MM`")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("enqueue", pos, 0, ""); err != nil {
		return err
	}
	var flagsUsed []string
	fs.Visit(func(f *flag.Flag) {
		if !globalFlagNames[f.Name] && f.Name != "f" {
			flagsUsed = append(flagsUsed, "-"+f.Name)
		}
	})

	var (
		reqs  []tasks.SendRequest
		batch bool
	)
	switch {
	case *file != "" && len(flagsUsed) > 0:
		return &usageError{msg: fmt.Sprintf("enqueue: -f cannot be combined with %s", strings.Join(flagsUsed, ", ")), cmd: "enqueue"}
	case *file != "":
		data, err := a.readInput("enqueue", *file)
		if err != nil {
			return err
		}
		reqs, batch, err = parseSendFile(data)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("enqueue: %s: %v", *file, err)}
		}
		if batch && len(reqs) == 0 {
			return &usageError{msg: fmt.Sprintf("enqueue: %s: the batch is empty", *file)}
		}
	case len(flagsUsed) == 0:
		return &usageError{msg: "enqueue: give -f FILE, or -send-id, -op, -account and the operation's fields", cmd: "enqueue"}
	default:
		req := tasks.SendRequest{
			SendID:      *sendID,
			Operation:   tasks.Operation(*op),
			AccountID:   *account,
			ChatID:      *chat,
			AttendeeIDs: attendees.values,
			MessageID:   *message,
			Text:        *text,
			Reaction:    *reaction,
		}
		if alias, ok := opAliases[*op]; ok {
			req.Operation = alias
		}
		if *textFile != "" {
			if *text != "" {
				return &usageError{msg: "enqueue: give -text or -text-file, not both", cmd: "enqueue"}
			}
			data, err := a.readInput("enqueue", *textFile)
			if err != nil {
				return err
			}
			if !utf8.Valid(data) {
				return &usageError{msg: fmt.Sprintf("enqueue: %s is not UTF-8 text", *textFile)}
			}
			req.Text = string(data)
		}
		for i, s := range attachments.values {
			var att tasks.Attachment
			if err := decodeStrict([]byte(s), &att); err != nil {
				return &usageError{msg: fmt.Sprintf("enqueue: -attachment #%d: %v", i+1, err), cmd: "enqueue"}
			}
			req.Attachments = append(req.Attachments, att)
		}
		if *metadata != "" {
			m := bytes.TrimSpace([]byte(*metadata))
			if !json.Valid(m) || m[0] != '{' {
				return &usageError{msg: "enqueue: -metadata must be a JSON object, e.g. '{\"sequence\":\"s1\"}'", cmd: "enqueue"}
			}
			req.Metadata = json.RawMessage(m)
		}
		var w tasks.Window
		times := []timeFlag{
			{"deadline", *deadline, &req.ApprovalDeadline},
			{"stop-if-replied-since", *stopIfReplied, &req.StopIfRepliedSince},
			{"not-before", *notBefore, &w.NotBefore},
			{"not-after", *notAfter, &w.NotAfter},
		}
		for _, t := range times {
			if t.val == "" {
				continue
			}
			parsed, err := time.Parse(time.RFC3339, t.val)
			if err != nil {
				return &usageError{msg: fmt.Sprintf("enqueue: -%s %q is not an RFC 3339 time such as 2025-06-01T09:00:00Z", t.flag, t.val), cmd: "enqueue"}
			}
			*t.dst = &parsed
		}
		w.Timezone, w.From, w.To = *timezone, *from, *to
		if *days != "" {
			for _, d := range strings.Split(*days, ",") {
				w.Days = append(w.Days, strings.ToLower(strings.TrimSpace(d)))
			}
		}
		if w.NotBefore != nil || w.NotAfter != nil || w.Timezone != "" || len(w.Days) > 0 || w.From != "" || w.To != "" {
			req.Window = &w
		}
		reqs = []tasks.SendRequest{req}
	}

	c, err := a.client()
	if err != nil {
		return err
	}
	if batch {
		return a.enqueueBatch(ctx, c, reqs)
	}
	req := reqs[0]
	var rec tasks.Record
	raw, status, err := c.send(ctx, http.MethodPost, "/v1/sends", req, &rec)
	if err != nil {
		if req.SendID != "" {
			return fmt.Errorf("enqueue %s: %w", req.SendID, err)
		}
		return fmt.Errorf("enqueue: %w", err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	verb := "enqueued"
	if status == http.StatusOK {
		verb = "already enqueued with the same content"
	}
	fmt.Fprintf(a.stdout, "%s: %s (state %s)\n", rec.SendID, verb, rec.State)
	fmt.Fprintf(a.stdout, "digest: %s\n", rec.Digest)
	fmt.Fprintf(a.stdout, "review: sendctl show %s\n", rec.SendID)
	return nil
}

// timeFlag is an RFC 3339 time flag of enqueue and where it goes.
type timeFlag struct {
	flag string
	val  string
	dst  **time.Time
}

func (a *app) enqueueBatch(ctx context.Context, c *client, reqs []tasks.SendRequest) error {
	ans, err := bulk(ctx, c, "/v1/sends:batch", reqs, func(chunk []tasks.SendRequest) any {
		return struct {
			Sends []tasks.SendRequest `json:"sends"`
		}{chunk}
	})
	if err != nil {
		if len(ans.items) > 0 {
			_ = a.report(ans, enqueueWord)
		}
		return fmt.Errorf("enqueue: %w", err)
	}
	if err := a.report(ans, enqueueWord); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func enqueueWord(status int) string {
	if status == http.StatusCreated {
		return "enqueued"
	}
	return "unchanged"
}
