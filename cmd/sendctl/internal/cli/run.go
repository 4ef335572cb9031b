package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/sendworker/sendworker/internal/suggest"
)

// Exit codes; the package doc says what each means.
const (
	exitOK       = 0
	exitUsage    = 1
	exitInvalid  = 2
	exitNotFound = 3
	exitConflict = 4
	exitAuth     = 5
	exitServer   = 6
	exitPartial  = 7
)

const (
	defaultURL     = "http://127.0.0.1:8080"
	defaultTimeout = 30 * time.Second
)

// errHelp ends a run that printed help on request: exit 0.
var errHelp = errors.New("help requested")

// globals are the flags every command accepts, before or after its name.
type globals struct {
	url       string
	token     string
	tokenFile string
	output    string
	timeout   time.Duration
	tz        string
}

type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	g              globals
	token          string // resolved at the first API call; scrubbed from every error
	zone           zone   // the zone times are printed in (-tz)
}

// command is one sendctl subcommand.
type command struct {
	name     string
	synopsis string // arguments and flags, after the name
	summary  string
	details  string // extra help text, may be empty
	run      func(a *app, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"enqueue", "-f FILE | -send-id ID -op OP -account A ...", "submit a send (or a batch) for approval", enqueueDetails, (*app).cmdEnqueue},
		{"list", "[-state S] [-account A] [-limit N] [-cursor C] [-all] [-oldest]", "list sends, newest first", "", (*app).cmdList},
		{"show", "SEND_ID", "show exactly what a send will do, its digest, state and history", "", (*app).cmdShow},
		{"approve", "SEND_ID -digest D | -f FILE | -from-list [-state S] [-account A] [-yes]", "approve the digest you reviewed", approveDetails, (*app).cmdApprove},
		{"reject", "SEND_ID... -reason R | -f FILE -reason R", "reject sends", rejectDetails, (*app).cmdReject},
		{"cancel", "SEND_ID [-reason R]", "cancel a send that has not gone out", "", (*app).cmdCancel},
		{"pause", "[-account A] | status", "stop sending (everything, or one account); \"pause status\" shows the switches", "", (*app).cmdPause},
		{"resume", "[-account A]", "undo a pause", "", (*app).cmdResume},
		{"forecast", "ACCOUNT_ID [-limit N] [-cursor C]", "why and until when an account's sends wait: next free slots, limits, waiting sends", forecastDetails, (*app).cmdForecast},
		{"optout", "add|remove CONTACT_ID [-reason R] | list", "manage the opt-out list (with reason, source and time)", "", (*app).cmdOptOut},
		{"events", "tail [-limit N] [-cursor C] [-f]", "the provider's webhook events as processed: replies, opt-outs, receipts, account status", "", (*app).cmdEvents},
		{"stats", "", "count sends per state, the outbox and the pauses", "", (*app).cmdStats},
		{"audit", "[-actor ID] [-send ID] [-account A] [-from T] [-to T] [-all] [-jsonl]", "who decided what and when: the audit stream (JSON Lines export with -jsonl)", auditDetails, (*app).cmdAudit},
		{"account", "ACCOUNT_ID", "provider look-up: an account and its connection status", "", (*app).cmdAccount},
		{"chats", "-account A [-limit N] [-cursor C]", "provider look-up: the chats of an account", "", (*app).cmdChats},
		{"messages", "CHAT_ID [-limit N] [-cursor C] [-full]", "provider look-up: a conversation, oldest to newest", "", (*app).cmdMessages},
		{"attendees", "CHAT_ID", "provider look-up: the attendees of a chat", "", (*app).cmdAttendees},
		{"help", "[COMMAND]", "show help", "", (*app).cmdHelp},
	}
}

// unknownCommand is the error text of a command that does not exist, with
// the nearest command when name looks like a typo of it.
func unknownCommand(name string) string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if near, ok := suggest.Closest(name, names); ok {
		return fmt.Sprintf("unknown command %q; did you mean %q?", name, near)
	}
	return fmt.Sprintf("unknown command %q", name)
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Run is sendctl: it parses args (without the program name), calls the admin
// API and returns the exit code. It reads the environment only through
// getenv and never touches signals: cancel ctx to interrupt it.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	a.g = globals{url: defaultURL, output: "table", timeout: defaultTimeout}
	if u := getenv("SENDCTL_URL"); u != "" {
		a.g.url = u
	}
	a.g.tz = getenv("SENDCTL_TZ")
	return a.finish(a.run(ctx, args))
}

func (a *app) run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sendctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.addGlobals(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.mainUsage(a.stdout)
			return errHelp
		}
		return &usageError{msg: err.Error(), cmd: "-"}
	}
	if fs.NArg() == 0 {
		a.mainUsage(a.stderr)
		return &usageError{msg: "no command given"}
	}
	name := fs.Arg(0)
	cmd, ok := findCommand(name)
	if !ok {
		return &usageError{msg: unknownCommand(name), cmd: "-"}
	}
	return cmd.run(a, ctx, fs.Args()[1:])
}

// finish prints err (if any) and returns the exit code.
func (a *app) finish(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var (
		ue *usageError
		ae *apiError
		pe *partialError
	)
	a.errLine("sendctl: " + err.Error())
	if errors.As(err, &ae) {
		for _, f := range ae.Fields {
			a.errLine(f.Field + ": " + f.Message)
		}
	}
	switch {
	case errors.As(err, &ue):
		switch ue.cmd {
		case "":
		case "-":
			a.errLine(`run "sendctl help" for usage`)
		default:
			a.errLine(fmt.Sprintf("run \"sendctl help %s\" for usage", ue.cmd))
		}
		return exitUsage
	case errors.As(err, &pe):
		return exitPartial
	case ae != nil:
		return ae.exitCode()
	}
	return exitServer
}

// errLine writes one line to stderr with the token scrubbed out.
func (a *app) errLine(s string) {
	fmt.Fprintln(a.stderr, a.scrub(s))
}

// scrub removes the token from text that is about to be printed. Tokens are
// never formatted into messages on purpose; this catches a server that
// echoes one back.
func (a *app) scrub(s string) string {
	for _, t := range []string{a.token, a.g.token} {
		if len(t) >= 4 {
			s = strings.ReplaceAll(s, t, "<redacted>")
		}
	}
	return s
}

// addGlobals registers the global flags on fs. They write into a.g without
// resetting it, so a command's flag set can accept them again after the
// command name.
func (a *app) addGlobals(fs *flag.FlagSet) {
	fs.Var(&stringFlag{&a.g.url}, "url", "admin API base URL (env SENDCTL_URL)")
	fs.Var(&secretFlag{&a.g.token}, "token", "API token (env SENDCTL_TOKEN; prefer -token-file or the env: arguments are visible to other users)")
	fs.Var(&stringFlag{&a.g.tokenFile}, "token-file", "read the API token from this file (env SENDCTL_TOKEN_FILE)")
	fs.Var(&stringFlag{&a.g.output}, "o", "output: table or json (the API's JSON, indented)")
	fs.Var(&durationFlag{&a.g.timeout}, "timeout", "timeout of each API call")
	fs.Var(&stringFlag{&a.g.tz}, "tz", "time zone of the times printed and of times typed without an offset: an IANA name, UTC (default) or local (env SENDCTL_TZ)")
}

var globalFlagNames = map[string]bool{"url": true, "token": true, "token-file": true, "o": true, "timeout": true, "tz": true}

type stringFlag struct{ p *string }

func (f *stringFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}
func (f *stringFlag) Set(s string) error { *f.p = s; return nil }

// secretFlag holds the token; its String is empty so no help text or flag
// error can show it.
type secretFlag struct{ p *string }

func (f *secretFlag) String() string     { return "" }
func (f *secretFlag) Set(s string) error { *f.p = s; return nil }

type durationFlag struct{ p *time.Duration }

func (f *durationFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 30s or 2m")
	}
	if d <= 0 {
		return errors.New("must be positive")
	}
	*f.p = d
	return nil
}

// stringsFlag is a repeatable string flag.
type stringsFlag struct{ values []string }

func (f *stringsFlag) String() string     { return strings.Join(f.values, ",") }
func (f *stringsFlag) Set(s string) error { f.values = append(f.values, s); return nil }

// newFlags returns the flag set of command name, with the global flags.
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.addGlobals(fs)
	return fs
}

// parse parses a command's arguments, flags and positional arguments in any
// order ("--" ends the flags), and returns the positional ones. -h prints
// the command's help.
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.commandUsage(a.stdout, fs)
				return nil, errHelp
			}
			return nil, &usageError{msg: fs.Name() + ": " + err.Error(), cmd: fs.Name()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if a.g.output != "table" && a.g.output != "json" {
		return nil, &usageError{msg: fmt.Sprintf("-o %q: want table or json", a.g.output)}
	}
	z, err := parseZone(a.g.tz)
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	a.zone = z
	return positional, nil
}

// wantArgs checks the number of positional arguments of a command; cmd
// may include an action ("optout add").
func wantArgs(cmd string, got []string, n int, what string) error {
	help := strings.Fields(cmd)[0]
	switch {
	case len(got) < n:
		return &usageError{msg: fmt.Sprintf("%s: missing %s", cmd, what), cmd: help}
	case len(got) > n:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", cmd, got[n]), cmd: help}
	}
	return nil
}

// client returns an API client from the global flags and environment.
func (a *app) client() (*client, error) {
	token, err := a.resolveToken()
	if err != nil {
		return nil, err
	}
	a.token = token
	return newClient(a.g.url, token, a.g.timeout)
}

// resolveToken picks the token: -token, then -token-file, then
// SENDCTL_TOKEN, then SENDCTL_TOKEN_FILE. No token at all is allowed: the
// API answers 401 and the message says how to give one.
func (a *app) resolveToken() (string, error) {
	if a.g.token != "" && a.g.tokenFile != "" {
		return "", &usageError{msg: "give either -token or -token-file, not both"}
	}
	if a.g.token != "" {
		return a.g.token, nil
	}
	file := a.g.tokenFile
	if file == "" {
		if t := a.getenv("SENDCTL_TOKEN"); t != "" {
			return t, nil
		}
		file = a.getenv("SENDCTL_TOKEN_FILE")
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The path is fine to print; the file's content never is.
		return "", &usageError{msg: fmt.Sprintf("token file: %v", pathErr(err))}
	}
	t := strings.TrimSpace(string(b))
	if t == "" || strings.ContainsAny(t, "\r\n") {
		return "", &usageError{msg: fmt.Sprintf("token file %s: want one line holding the token", file)}
	}
	return t, nil
}

// pathErr keeps an *os.PathError's path and cause, dropping the operation.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func (a *app) json() bool { return a.g.output == "json" }

func (a *app) mainUsage(w io.Writer) {
	fmt.Fprint(w, `sendctl is the command-line client of the sendworker admin API.

Usage: sendctl [global flags] COMMAND [arguments and flags]

Commands:
`)
	tw := newTable(w)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Global flags (also accepted after the command name):
  -url URL          admin API base URL (env SENDCTL_URL; default `+defaultURL+`)
  -token TOKEN      API token (env SENDCTL_TOKEN); -token-file FILE or the env
                    keep it out of the process list (env SENDCTL_TOKEN_FILE)
  -o table|json     output: aligned tables (default) or the API's JSON, indented
  -timeout D        timeout of each API call (default 30s)
  -tz ZONE          print times in ZONE (IANA name, UTC or local; env SENDCTL_TZ; default UTC)

Exit codes:
  0  success
  1  usage error (bad flags or arguments, unreadable input file)
  2  invalid request (HTTP 400/413/415); field errors follow, one per line "field: message"
  3  not found (HTTP 404)
  4  conflict or refusal (HTTP 409, and HTTP 403 self_approval)
  5  unauthorized or forbidden (HTTP 401/403)
  6  server or network error (HTTP 5xx, unreachable, timeout, interrupted)
  7  bulk command: at least one item failed

Run "sendctl help COMMAND" or "sendctl COMMAND -h" for a command's flags.
`)
}

func (a *app) commandUsage(w io.Writer, fs *flag.FlagSet) {
	cmd, _ := findCommand(fs.Name())
	fmt.Fprintf(w, "Usage: sendctl %s %s\n\n%s.\n", cmd.name, cmd.synopsis, upperFirst(cmd.summary))
	if cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !globalFlagNames[f.Name] {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	if len(names) > 0 {
		fmt.Fprint(w, "\nFlags:\n")
	}
	for _, name := range names {
		f := fs.Lookup(name)
		typ, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "\nGlobal flags -url, -token, -token-file, -o, -timeout, -tz: see \"sendctl help\".\n")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (a *app) cmdHelp(_ context.Context, args []string) error {
	fs := a.newFlags("help")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		a.mainUsage(a.stdout)
		return nil
	}
	cmd, ok := findCommand(pos[0])
	if !ok {
		return &usageError{msg: "help: " + unknownCommand(pos[0]), cmd: "-"}
	}
	// Every command prints its own help, with its flags, on -h.
	err = cmd.run(a, context.Background(), []string{"-h"})
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
