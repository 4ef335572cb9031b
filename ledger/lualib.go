package ledger

import (
	"embed"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/luafn"
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
// A script is its body preceded by only the definitions it needs. By EVALSHA
// Redis runs the whole chunk on every call, so each local function it
// defines is a closure allocated (and later collected) per call: the full
// library costs more than many a body. As a Redis Function (luaFunctions) the
// functions are made once, at load, and only the values run per call.
var luaLib = luafn.MustParse(luaGenerated() + luaSource(luaLibFile))

// luaFunctions is every script as one Redis Function library, named after a
// hash of its text (see package luafn).
var luaFunctions = luafn.NewLibrary("sendworker_ledger", luaLib)

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
func script(name string) *luafn.Script {
	body := luaSource(name)
	defs := luaLib.Needed(body)
	s := luaFunctions.Add(name, defs.Source()+body, defs, body)
	luaBuilt[name] = []*redis.Script{s.EvalSha()}
	return s
}

// leaseScript is a script that sets or judges attempt leases, in two builds:
// leases on Redis's clock (LeaseClockRedis) or on the caller's
// (LeaseClockCaller). The build sets LEASE_CLOCK_REDIS, which lease_now reads.
type leaseScript struct{ redisClock, callerClock *luafn.Script }

// leaseScriptOf builds both lease builds of lua/<name>.lua.
func leaseScriptOf(name string) leaseScript {
	body := luaSource(name)
	defs := luaLib.Needed(body)
	build := func(suffix, clock string) *luafn.Script {
		pre := "local LEASE_CLOCK_REDIS = " + clock + "\n"
		all := append(luafn.MustParse(pre), defs...)
		return luaFunctions.Add(name+"_"+suffix, pre+defs.Source()+body, all, body)
	}
	ls := leaseScript{redisClock: build("redisclock", "true"), callerClock: build("callerclock", "false")}
	luaBuilt[name] = []*redis.Script{ls.redisClock.EvalSha(), ls.callerClock.EvalSha()}
	return ls
}

// lease returns the build of s for the ledger's LeaseClock.
func (l *Ledger) lease(s leaseScript) *luafn.Script {
	if l.opts.LeaseClock == LeaseClockCaller {
		return s.callerClock
	}
	return s.redisClock
}
