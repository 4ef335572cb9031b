package luafn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Library is a package's scripts as one Redis Function library. Its name is
// the package's prefix and a hash of the library's text, so replicas running
// different versions each load and call their own library, never another's
// code, and a library once loaded never needs replacing.
//
// The text, made once all scripts are added (on first use):
//
//	#!lua name=<prefix>_<hash>
//	local KEYS, ARGV
//	local <every value definition's names>
//	<every local function and constant of the shared definitions, in order>
//	redis.register_function{function_name = '<name>_<script>', callback = function(keys, args)
//	  KEYS, ARGV = keys, args
//	  <the script's value definitions, as assignments, in order>
//	  <the script's body>
//	end}
//	...
//
// so the shared functions and constants are made once at load and read the per-call values
// through the library's locals, which each call sets before its body runs,
// exactly as the EVALSHA build computes them.
type Library struct {
	prefix  string
	shared  Defs
	scripts []*Script

	once  sync.Once
	built bool // the text is made: no script may be added any more
	name  string
	code  string
}

// Script is one script of a Library: a registered function, and the same
// code as one EVALSHA script for servers without Functions.
type Script struct {
	lib  *Library
	fn   string // the function's name without the library's
	defs Defs   // the definitions run before body (shared functions and per-call values)
	body string
	sha  *redis.Script
}

var fnName = regexp.MustCompile(`^[a-z0-9_]+$`)

// NewLibrary returns an empty library whose functions are defined by shared.
func NewLibrary(prefix string, shared Defs) *Library {
	if !fnName.MatchString(prefix) {
		panic("luafn: library prefix " + prefix)
	}
	return &Library{prefix: prefix, shared: shared}
}

// Add adds script fn to the library: body preceded by defs, whose functions
// must all be among the library's shared definitions (they are made at
// load) and whose values run on every call. src is the script's whole
// source as EVALSHA runs it: defs' code, possibly with more comments and
// blank lines (the same statements), then body. Scripts are added when a
// package's variables are initialized, before any runs.
func (lib *Library) Add(fn string, src string, defs Defs, body string) *Script {
	if !fnName.MatchString(fn) {
		panic("luafn: function name " + fn)
	}
	if lib.built {
		panic("luafn: function " + fn + " added to library " + lib.name + " after its first use")
	}
	shared := map[string]bool{}
	for _, d := range lib.shared {
		shared[d.Names[0]] = true
	}
	defs = append(Defs(nil), defs...)
	for i, d := range defs {
		switch {
		case d.Func && !shared[d.Names[0]]:
			panic("luafn: " + fn + ": local function " + d.Names[0] + " is not a shared definition")
		case !shared[d.Names[0]]:
			// the script's own value (a build's setting): set by each call
			defs[i].Const = false
		}
	}
	for _, s := range lib.scripts {
		if s.fn == fn {
			panic("luafn: function " + fn + " added twice")
		}
	}
	s := &Script{lib: lib, fn: fn, defs: defs, body: body, sha: redis.NewScript(src)}
	lib.scripts = append(lib.scripts, s)
	return s
}

// EvalSha is the script as one EVALSHA script (its whole source).
func (s *Script) EvalSha() *redis.Script { return s.sha }

// Function is the script's function name in Redis.
func (s *Script) Function() string { return s.lib.Name() + "_" + s.fn }

// Name is the library's name in Redis: its prefix and a hash of its text.
func (lib *Library) Name() string {
	lib.build()
	return lib.name
}

// Code is the library's text, as FUNCTION LOAD takes it.
func (lib *Library) Code() string {
	lib.build()
	return lib.code
}

func (lib *Library) build() {
	lib.once.Do(func() {
		sum := sha256.Sum256([]byte(lib.text(lib.prefix)))
		lib.name = lib.prefix + "_" + hex.EncodeToString(sum[:6])
		lib.code = "#!lua name=" + lib.name + "\n" + lib.text(lib.name)
		lib.built = true
	})
}

// text is the library's text (without its first line) with its functions
// named after name.
func (lib *Library) text(name string) string {
	var b strings.Builder
	b.WriteString("local KEYS, ARGV\n")
	declared := map[string]bool{}
	var values []string
	declare := func(defs Defs) {
		for _, d := range defs {
			if d.Func {
				continue
			}
			for _, n := range d.Names {
				if !declared[n] {
					declared[n] = true
					values = append(values, n)
				}
			}
		}
	}
	declare(lib.shared)
	for _, s := range lib.scripts {
		declare(s.defs)
	}
	if len(values) > 0 {
		b.WriteString("local " + strings.Join(values, ", ") + "\n")
	}
	for _, d := range lib.shared {
		if d.Func {
			b.WriteString(d.Code)
		} else if d.Const {
			b.WriteString(d.assignment())
		}
	}
	for _, s := range lib.scripts {
		fmt.Fprintf(&b, "redis.register_function{function_name = '%s_%s', callback = function(keys, args)\n", name, s.fn)
		b.WriteString("KEYS, ARGV = keys, args\n")
		for _, d := range s.defs {
			if !d.Func && !d.Const {
				b.WriteString(d.assignment())
			}
		}
		b.WriteString(s.body)
		if !strings.HasSuffix(s.body, "\n") {
			b.WriteString("\n")
		}
		b.WriteString("end}\n")
	}
	return b.String()
}

// Load loads the library on c: on a Cluster client, on every master (a node
// that later gets a slot has it too). A library of the same name already
// there (a racing replica's load) is the same code: not an error.
func (lib *Library) Load(ctx context.Context, c redis.UniversalClient) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return lib.loadOn(ctx, n)
		})
	}
	return lib.loadOn(ctx, c)
}

func (lib *Library) loadOn(ctx context.Context, c redis.Cmdable) error {
	err := c.FunctionLoad(ctx, lib.Code()).Err()
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("luafn: FUNCTION LOAD %s: %w", lib.Name(), err)
	}
	return nil
}

// Scripts returns the library's scripts, in the order added.
func (lib *Library) Scripts() []*Script { return lib.scripts }
