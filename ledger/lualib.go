package ledger

import (
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaLib is every definition a script may use: the key builders (keys.go),
// the shared helpers, the terminal transition and iso_ms, in an order where
// each definition uses only the ones before it (as Lua requires of locals).
//
// A script is its body preceded by only the definitions it needs. Redis runs
// the whole chunk on every call, so each local function it defines is a
// closure allocated (and later collected) per call: the full library costs
// more than many a body.
var luaLib = parseLuaLib(luaKeys + luaBase + luaNewMessageOps + luaFinish + luaISO)

// script compiles body with the definitions of luaLib it uses.
func script(body string) *redis.Script { return redis.NewScript(luaLib.prelude(body) + body) }

// leaseScript is a script that sets or judges attempt leases, in two builds:
// leases on Redis's clock (LeaseClockRedis) or on the caller's
// (LeaseClockCaller). The build sets LEASE_CLOCK_REDIS, which lease_now reads.
type leaseScript struct{ redisClock, callerClock *redis.Script }

func leaseScriptOf(body string) leaseScript {
	src := luaLib.prelude(body) + body
	return leaseScript{
		redisClock:  redis.NewScript("local LEASE_CLOCK_REDIS = true\n" + src),
		callerClock: redis.NewScript("local LEASE_CLOCK_REDIS = false\n" + src),
	}
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
