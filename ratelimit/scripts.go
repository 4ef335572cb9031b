package ratelimit

import (
	"embed"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/luafn"
)

// Every script of the limiter is one file lua/<name>.lua, its header listing
// its KEYS, ARGV and reply. The per-account scripts are lua/common.lua (time
// units, limits, the slot search) + their own body. Times are Unix
// milliseconds chosen by the Go caller (the injected clock), or, with
// Options.RedisClock (the daemon's setting), the Redis server's TIME, so that
// replicas whose clocks differ still space their calls on one clock; key TTLs
// are relative (PEXPIRE), so a simulated clock ahead of or behind the
// server's cannot expire keys early.
//
// The per-account scripts take the account's limits as ARGV[1..9]
// (Limiter.limitArgs):
//
//	ARGV[1] min interval (ms)   ARGV[2] hourly cap            ARGV[3] daily cap
//	ARGV[4] new-chat hourly cap ARGV[5] new-chat daily cap    ARGV[6] recipient cooldown (ms)
//	ARGV[7] warm-up start       ARGV[8] warm-up step          ARGV[9] account created (ms, -1 unknown)
//
// and ARGV[10] now (ms; -1: Redis's TIME). A cap of 0 means no cap.

//go:embed lua/*.lua
var luaFiles embed.FS

// luaCommonFile is the shared part of the per-account scripts; every other
// file of lua/ is a script.
const luaCommonFile = "common"

// scriptKind tells whether a script's body needs lua/common.lua before it.
type scriptKind bool

const (
	withCommon scriptKind = true
	alone      scriptKind = false
)

// luaBuilt is every script, by file name, as newScript made it:
// TestScriptsCompile loads each, and fails for a file of lua/ that no Go
// variable built.
var luaBuilt = map[string]*redis.Script{}

// luaCode is the whole code of every script, by file name, as Redis runs it
// (TestScriptHeadersDeclareTheirKeys reads it).
var luaCode = map[string]string{}

// luaSource returns the text of lua/<name>.lua. A missing file is a
// programming error, found when the package loads.
func luaSource(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("ratelimit: Lua file: " + err.Error())
	}
	return string(b)
}

// luaCommon is lua/common.lua's definitions.
var luaCommon = luafn.MustParse(luaSource(luaCommonFile))

// luaFunctions is every script as one Redis Function library, named after a
// hash of its text (see package luafn): lua/common.lua's functions are made
// once, when it loads, instead of on every call.
var luaFunctions = luafn.NewLibrary("sendworker_ratelimit", luaCommon)

// newScript builds the script of lua/<name>.lua (after lua/common.lua if kind is withCommon).
func newScript(name string, kind scriptKind) *luafn.Script {
	body := luaSource(name)
	src := body
	var defs luafn.Defs
	if kind == withCommon {
		src = luaSource(luaCommonFile) + body
		defs = luaCommon
	}
	s := luaFunctions.Add(name, src, defs, body)
	luaBuilt[name] = s.EvalSha()
	luaCode[name] = src
	return s
}

// reserveScript takes or looks up the slot of one send.
//
// KEYS, ARGV and reply: lua/reserve.lua.
var reserveScript = newScript("reserve", withCommon)

// forecastScript reads an account's state without changing it.
//
// KEYS, ARGV and reply: lua/forecast.lua.
var forecastScript = newScript("forecast", withCommon)

// penalizeScript moves an account's penalty (no slot before it) later, never
// earlier.
//
// KEYS, ARGV and reply: lua/penalize.lua.
var penalizeScript = newScript("penalize", alone)

// cancelScript frees the slot of a send that will not go out, if the slot is
// still in the future.
//
// KEYS, ARGV and reply: lua/cancel.lua.
var cancelScript = newScript("cancel", alone)

// refundScript gives back the slot of a send that a guard refused after it
// took the slot: the slot it holds (future or past), or the one it consumed
// last. The caller vouches that no provider call was made with it.
//
// KEYS, ARGV and reply: lua/refund.lua.
var refundScript = newScript("refund", alone)

// globalScript is a cluster-wide GCRA in its reserving form: every call takes
// the next emission time and says how long to wait for it, so callers sleep
// once and never retry.
//
// KEYS, ARGV and reply: lua/global.lua.
var globalScript = newScript("global", alone)
