// Package luafn runs a package's Lua scripts on Redis: as Redis Functions
// (one library per package and source version, FUNCTION LOAD once, FCALL per
// call) where the server has them, else by EVALSHA of each script's whole
// source, as before Functions.
//
// A script here is a body (the text of its lua/<name>.lua) preceded by
// definitions shared with other scripts (lua/lib.lua, lua/common.lua). By
// EVALSHA Redis runs the whole source on every call, so each shared local
// function is a closure made anew per call; in a Function library the
// functions are made once, when the library loads, and only the values a call
// must compute afresh run per call (see Library).
package luafn

import (
	"fmt"
	"regexp"
	"strings"
)

// Def is one top-level definition of a Lua library source, with the comment
// lines just above it.
type Def struct {
	Names []string        // the locals it defines
	Code  string          // its source, comments first
	Uses  map[string]bool // every identifier of its source
	// Func: a "local function": made once when a Function library loads.
	Func bool
	// Const: a value made once when a Function library loads: a string or
	// number from literals and constants only (immutable, like a function).
	// Every other value definition (one reading ARGV, KEYS, redis or a
	// function, a table, which a call may change, a statement after it)
	// runs on every call, as in the EVALSHA build, so that nothing of one
	// call is seen by the next.
	Const bool
}

// Defs is a library source's definitions in source order, where each uses
// only the ones before it (as Lua requires of locals).
type Defs []Def

var luaIdent = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// Identifiers returns the identifiers of Lua source outside its comments
// (and, harmlessly, the words of its string literals).
func Identifiers(src string) map[string]bool {
	ids := map[string]bool{}
	for _, line := range strings.Split(src, "\n") {
		code, _, _ := strings.Cut(line, "--")
		for _, id := range luaIdent.FindAllString(code, -1) {
			ids[id] = true
		}
	}
	return ids
}

// Parse splits src into its top-level definitions. A definition starts at a
// line "local ..." in column 0, preceded by the comment lines ("--" in
// column 0) just above it, and runs to the next one; every other line
// (indented, "end", "}", a statement such as "if ... end") continues it.
//
// A "local function" must end at its own "end": any other column-0 line
// after its first is refused, since a statement there would run once at
// library load instead of on every call.
func Parse(src string) (Defs, error) {
	var defs Defs
	var comments []string
	closed := false // the last definition is a local function past its "end"
	for _, line := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(line, "local "):
			decl := strings.TrimPrefix(line, "local ")
			var names []string
			fn, isFunc := strings.CutPrefix(decl, "function ")
			if isFunc {
				name, _, _ := strings.Cut(fn, "(")
				names = []string{strings.TrimSpace(name)}
			} else {
				lhs, _, _ := strings.Cut(decl, "=")
				for _, n := range strings.Split(lhs, ",") {
					names = append(names, strings.TrimSpace(n))
				}
			}
			code := strings.Join(append(comments, line), "\n") + "\n"
			defs = append(defs, Def{Names: names, Code: code, Func: isFunc})
			closed = isFunc && strings.HasSuffix(strings.TrimSpace(line), " end")
			comments = nil
		case strings.HasPrefix(line, "--"):
			comments = append(comments, line)
		case strings.TrimSpace(line) == "":
			comments = nil
		default:
			if len(defs) == 0 {
				return nil, fmt.Errorf("luafn: statement outside a definition: %q", line)
			}
			last := &defs[len(defs)-1]
			if last.Func {
				if closed {
					return nil, fmt.Errorf("luafn: statement after local function %s: %q", last.Names[0], line)
				}
				closed = line == "end"
			}
			last.Code += line + "\n"
		}
	}
	notConst := map[string]bool{"ARGV": true, "KEYS": true, "redis": true}
	for i := range defs {
		d := &defs[i]
		d.Uses = Identifiers(d.Code)
		if d.Func && !strings.HasSuffix(strings.TrimSpace(d.Code), "end") {
			return nil, fmt.Errorf("luafn: local function %s does not end with end", d.Names[0])
		}
		if !d.Func {
			d.Const = !strings.Contains(codeOf(d.Code), "{")
			for id := range d.Uses {
				if notConst[id] {
					d.Const = false
				}
			}
		}
		if !d.Const {
			for _, n := range d.Names {
				notConst[n] = true
			}
		}
	}
	return defs, nil
}

// codeOf is src without its comments.
func codeOf(src string) string {
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		code, _, _ := strings.Cut(line, "--")
		b.WriteString(code + "\n")
	}
	return b.String()
}

// MustParse is Parse for the sources embedded in a package: an error is a
// programming error, found when the package loads.
func MustParse(src string) Defs {
	defs, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return defs
}

// Needed returns the definitions body needs, directly or through other
// definitions, in source order.
func (defs Defs) Needed(body string) Defs {
	need := Identifiers(body)
	keep := make([]bool, len(defs))
	for i := len(defs) - 1; i >= 0; i-- {
		for _, n := range defs[i].Names {
			if need[n] {
				keep[i] = true
				break
			}
		}
		if keep[i] {
			for id := range defs[i].Uses {
				need[id] = true
			}
		}
	}
	var out Defs
	for i, d := range defs {
		if keep[i] {
			out = append(out, d)
		}
	}
	return out
}

// Source is the definitions' code, in order.
func (defs Defs) Source() string {
	var b strings.Builder
	for _, d := range defs {
		b.WriteString(d.Code)
	}
	return b.String()
}

// assignment is a value definition's code as an assignment to locals
// declared before (the library's): its "local " dropped.
func (d Def) assignment() string {
	lines := strings.Split(d.Code, "\n")
	for i, l := range lines {
		if s, ok := strings.CutPrefix(l, "local "); ok {
			lines[i] = s
			break
		}
	}
	return strings.Join(lines, "\n")
}
