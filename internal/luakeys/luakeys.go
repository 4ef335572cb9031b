// Package luakeys checks the one rule for keys in the Lua scripts of ledger
// and ratelimit: a script's header declares exactly the KEYS its code reads,
// because the callers pass what the header says and a Redis Cluster client
// routes a script by its KEYS. The packages' tests run it over every script.
package luakeys

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// keysUse matches a KEYS reference: KEYS[<n>], KEYS[<n>..] (a header's open
// range) or a computed index such as KEYS[i].
var keysUse = regexp.MustCompile(`KEYS\[([^\]]*)\]`)

// routingOnly marks a declared key that only routes the script (test scripts).
const routingOnly = "(routing only)"

// Check returns what is wrong with the KEYS of the script whose source (its
// header comment first) is src and whose whole code as Redis runs it (shared
// definitions and body) is code: a fixed index read but not declared, or
// declared but never read (unless marked "(routing only)"); a computed index
// (KEYS[i]) only where the header declares an open range (KEYS[2..]).
func Check(src, code string) []string {
	fixed, routing, from := declared(src)
	used := map[int]bool{}
	computed := false
	for _, line := range strings.Split(code, "\n") {
		c, _, _ := strings.Cut(line, "--")
		for _, m := range keysUse.FindAllStringSubmatch(c, -1) {
			if n, err := strconv.Atoi(m[1]); err == nil {
				used[n] = true
			} else {
				computed = true
			}
		}
	}
	var problems []string
	for n := range used {
		if !fixed[n] && (from == 0 || n < from) {
			problems = append(problems, fmt.Sprintf("reads KEYS[%d], which its header does not declare", n))
		}
	}
	for n := range fixed {
		if !used[n] && !routing[n] {
			problems = append(problems, fmt.Sprintf("declares KEYS[%d] but never reads it", n))
		}
	}
	if computed != (from > 0) {
		problems = append(problems, fmt.Sprintf("computed KEYS index: %v; open range declared from: %d", computed, from))
	}
	sort.Strings(problems)
	return problems
}

// declared returns the KEYS the header comment of src declares: fixed
// indexes, those of them marked routing only, and the first index of an open
// range ("KEYS[2..]"), 0 if none.
func declared(src string) (fixed, routing map[int]bool, from int) {
	fixed, routing = map[int]bool{}, map[int]bool{}
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(line, "--") {
			break
		}
		for _, m := range keysUse.FindAllStringSubmatchIndex(line, -1) {
			idx := line[m[2]:m[3]]
			if n, ok := strings.CutSuffix(idx, ".."); ok {
				from, _ = strconv.Atoi(n)
				continue
			}
			n, err := strconv.Atoi(idx)
			if err != nil {
				continue
			}
			fixed[n] = true
			if strings.HasPrefix(strings.TrimSpace(line[m[1]:]), "any key") && strings.Contains(line[m[1]:], routingOnly) {
				routing[n] = true
			}
		}
	}
	return fixed, routing, from
}

// CheckScripts runs Check over every script of a package: the files dir/*.lua of fsys but
// the shared one named shared (without .lua), each with code(name), the code Redis runs for it.
// Each problem names its script.
func CheckScripts(fsys fs.FS, dir, shared string, code func(name string) string) ([]string, error) {
	files, err := fs.Glob(fsys, dir+"/*.lua")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no scripts in %s", dir)
	}
	var problems []string
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".lua")
		if name == shared {
			continue
		}
		src, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		for _, p := range Check(string(src), code(name)) {
			problems = append(problems, name+": "+p)
		}
	}
	return problems, nil
}
