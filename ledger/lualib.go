package ledger

import (
	"embed"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// The ledger's Lua: lua/lib.lua is the library of shared definitions, every
// other file of lua/ one script (its header lists its KEYS, ARGV and reply).
//
//go:embed lua/*.lua
var luaFiles embed.FS

// luaLibFile is the library's file; every other file of lua/ is a script.
const luaLibFile = "lib"

// luaLib is every definition a script may use: the key builders, the
// constants generated from Go (luaGenerated), then the rest of lua/lib.lua
// (shared helpers, the terminal transition, iso_ms...), in an order where
// each definition uses only the ones before it (as Lua requires of locals).
//
// A script is its body preceded by only the definitions it needs. Redis runs
// the whole chunk on every call, so each local function it defines is a
// closure allocated (and later collected) per call: the full library costs
// more than many a body.
var luaLib = parseLuaLib(luaGenerated() + luaSource(luaLibFile))

// luaBuilt is every build of every script file, by file name, as the script
// constructors (script, leaseScriptOf) made them: TestScriptsCompile loads
// each, and fails for a file of lua/ that no Go variable built.
var luaBuilt = map[string][]*redis.Script{}

// luaSource returns the text of lua/<name>.lua. A missing file is a
// programming error, found when the package loads.
func luaSource(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("ledger: Lua file: " + err.Error())
	}
	return string(b)
}

// luaGenerated returns the Lua constants that mirror Go, as library
// definitions: the Go values are the source of truth, so the Lua cannot
// drift from them (TestGeneratedLua checks the mapping).
//
//   - HISTORY_MAX: historyMax.
//   - RECOVERED_BY: RecoveredBy, the "by" of a recovery's history event.
//   - CLAIM_MIN_MS: claimMinTTL, the least a message id's claim is kept.
//   - is_terminal(state): tasks.State.Terminal over tasks.States.
//   - new_message_op(op): tasks.Operation.SendsNewMessage over tasks.Operations
//     (only those operations produce a message whose id End(sent) indexes and
//     claims; for a reaction, edit or delete the message id is the target's).
//   - R_<FIELD>, EV_<EVENT>: the results stream's field names and event types
//     (package results) that the scripts write.
func luaGenerated() string {
	var b strings.Builder
	b.WriteString("local HISTORY_MAX = " + strconv.Itoa(historyMax) + "\n")
	b.WriteString("local RECOVERED_BY = " + luaQuote(RecoveredBy) + "\n")
	b.WriteString("local CLAIM_MIN_MS = " + strconv.FormatInt(claimMinTTL.Milliseconds(), 10) + "\n")
	var terminal []string
	for _, s := range tasks.States {
		if s.Terminal() {
			terminal = append(terminal, "["+luaQuote(string(s))+"] = true")
		}
	}
	b.WriteString("local TERMINAL = {" + strings.Join(terminal, ", ") + "}\n")
	b.WriteString("local function is_terminal(s) return TERMINAL[s] == true end\n")
	var ops []string
	for _, op := range tasks.Operations {
		if op.SendsNewMessage() {
			ops = append(ops, "["+luaQuote(string(op))+"] = true")
		}
	}
	b.WriteString("local NEW_MESSAGE_OPS = {" + strings.Join(ops, ", ") + "}\n")
	b.WriteString("local function new_message_op(op) return NEW_MESSAGE_OPS[op] == true end\n")
	for _, c := range luaResultsNames() {
		b.WriteString("local " + c[0] + " = " + luaQuote(c[1]) + "\n")
	}
	return b.String()
}

// luaResultsNames is the Lua name and value of every results stream field
// name and event type the scripts write, sorted by Lua name.
func luaResultsNames() [][2]string {
	names := map[string]string{
		"R_EVENT":       results.FieldEvent,
		"R_ACCOUNT_ID":  results.FieldAccountID,
		"R_STATUS":      results.FieldStatus,
		"R_AT":          results.FieldAt,
		"R_RESULT":      results.FieldResult,
		"R_SEND_ID":     results.FieldSendID,
		"R_STATE":       results.FieldState,
		"R_CONTACT_ID":  results.FieldContactID,
		"R_SEND_IDS":    results.FieldSendIDs,
		"R_CHAT_ID":     results.FieldChatID,
		"R_MESSAGE_ID":  results.FieldMessageID,
		"R_DETAIL":      results.FieldDetail,
		"R_OPERATION":   results.FieldOperation,
		"R_REASON":      results.FieldReason,
		"R_ATTEMPTS":    results.FieldAttempts,
		"R_APPROVED_BY": results.FieldApprovedBy,
		"R_FINISHED_AT": results.FieldFinishedAt,
		"R_METADATA":    results.FieldMetadata,
		"R_DRY_RUN":     results.FieldDryRun,

		"EV_ACCOUNT_BREAKER_OPEN":   results.EventAccountBreakerOpen,
		"EV_ACCOUNT_BREAKER_CLOSED": results.EventAccountBreakerClosed,
		"EV_CONTACT_REPLIED":        results.EventContactReplied,
		"EV_CONTACT_OPTED_OUT":      results.EventContactOptedOut,
	}
	out := make([][2]string, 0, len(names))
	for k, v := range names {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// luaQuote is s as a Lua string literal (the values quoted are plain words).
func luaQuote(s string) string { return strconv.Quote(s) }

// script builds the script of lua/<name>.lua with the definitions of luaLib it uses.
func script(name string) *redis.Script {
	body := luaSource(name)
	s := redis.NewScript(luaLib.prelude(body) + body)
	luaBuilt[name] = []*redis.Script{s}
	return s
}

// leaseScript is a script that sets or judges attempt leases, in two builds:
// leases on Redis's clock (LeaseClockRedis) or on the caller's
// (LeaseClockCaller). The build sets LEASE_CLOCK_REDIS, which lease_now reads.
type leaseScript struct{ redisClock, callerClock *redis.Script }

// leaseScriptOf builds both lease builds of lua/<name>.lua.
func leaseScriptOf(name string) leaseScript {
	body := luaSource(name)
	src := luaLib.prelude(body) + body
	ls := leaseScript{
		redisClock:  redis.NewScript("local LEASE_CLOCK_REDIS = true\n" + src),
		callerClock: redis.NewScript("local LEASE_CLOCK_REDIS = false\n" + src),
	}
	luaBuilt[name] = []*redis.Script{ls.redisClock, ls.callerClock}
	return ls
}

// lease returns the build of s for the ledger's LeaseClock.
func (l *Ledger) lease(s leaseScript) *redis.Script {
	if l.opts.LeaseClock == LeaseClockCaller {
		return s.callerClock
	}
	return s.redisClock
}

// luaDef is one top-level definition of luaLib, with its leading comments.
type luaDef struct {
	names []string        // the locals it defines
	code  string          // its source
	uses  map[string]bool // every identifier in its source
}

type luaLibrary []luaDef

var luaIdent = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// identifiers returns the identifiers of Lua source outside its comments
// (and, harmlessly, the words of its string literals).
func identifiers(src string) map[string]bool {
	ids := map[string]bool{}
	for _, line := range strings.Split(src, "\n") {
		code, _, _ := strings.Cut(line, "--")
		for _, id := range luaIdent.FindAllString(code, -1) {
			ids[id] = true
		}
	}
	return ids
}

// parseLuaLib splits src into its top-level definitions. A definition starts
// at a line "local ..." in column 0, preceded by the comment lines ("--" in
// column 0) just above it, and runs to the next one; every other line
// (indented, "end", "}") continues it.
func parseLuaLib(src string) luaLibrary {
	var lib luaLibrary
	var comments []string
	for _, line := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(line, "local "):
			decl := strings.TrimPrefix(line, "local ")
			var names []string
			if fn, ok := strings.CutPrefix(decl, "function "); ok {
				name, _, _ := strings.Cut(fn, "(")
				names = []string{strings.TrimSpace(name)}
			} else {
				lhs, _, _ := strings.Cut(decl, "=")
				for _, n := range strings.Split(lhs, ",") {
					names = append(names, strings.TrimSpace(n))
				}
			}
			code := strings.Join(append(comments, line), "\n") + "\n"
			lib = append(lib, luaDef{names: names, code: code})
			comments = nil
		case strings.HasPrefix(line, "--"):
			comments = append(comments, line)
		case strings.TrimSpace(line) == "":
			comments = nil
		default:
			if len(lib) == 0 {
				panic("ledger: Lua library: statement outside a definition: " + line)
			}
			lib[len(lib)-1].code += line + "\n"
		}
	}
	for i := range lib {
		lib[i].uses = identifiers(lib[i].code)
	}
	return lib
}

// prelude returns the definitions body needs, directly or through other
// definitions, in library order.
func (lib luaLibrary) prelude(body string) string {
	need := identifiers(body)
	keep := make([]bool, len(lib))
	for i := len(lib) - 1; i >= 0; i-- {
		for _, n := range lib[i].names {
			if need[n] {
				keep[i] = true
				break
			}
		}
		if keep[i] {
			for id := range lib[i].uses {
				need[id] = true
			}
		}
	}
	var b strings.Builder
	for i, d := range lib {
		if keep[i] {
			b.WriteString(d.code)
		}
	}
	return b.String()
}
