package imports

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sendworker/sendworker/"

// mayImport lists, for the packages whose place in the map matters, every package of ours
// they may import (a name ending in "/" allows that tree). Packages not listed are bound only
// by the rules of TestImportRules that apply to everyone.
var mayImport = map[string][]string{
	"tasks":                {"internal/suggest"},
	"provider":             {"tasks"},
	"provider/wasim":       {"provider", "tasks"},
	"results":              {"tasks"},
	"config":               {"tasks"},
	"ledger":               {"tasks", "results", "internal/luafn"},
	"ratelimit":            {"tasks", "config", "internal/luafn"},
	"approval":             {"tasks", "ledger", "internal/service"},
	"inbound":              {"tasks", "ledger", "results", "internal/service"},
	"webhook":              {"tasks", "results", "internal/logthrottle", "internal/service"},
	"metrics":              {"tasks", "ledger", "provider"},
	"worker":               {"tasks", "ledger", "results", "provider", "ratelimit", "metrics", "worker/", "internal/logthrottle"},
	"worker/attachments":   {"tasks", "provider"},
	"adminapi/wire":        {"tasks"},
	"internal/maintenance": {"ledger", "internal/logthrottle", "internal/service"},
}

// imports returns, for each package directory of the module (relative, slash-separated), the
// packages of ours its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		for _, spec := range f.Imports {
			p, _ := strconv.Unquote(spec.Path.Value)
			if dep, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		if _, ok := out[pkg]; !ok {
			out[pkg] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

func allowed(list []string, dep string) bool {
	for _, a := range list {
		if dep == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(dep, a)) {
			return true
		}
	}
	return false
}

// under reports whether pkg is dir or inside it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

func TestImportRules(t *testing.T) {
	all := imports(t)
	for _, pkg := range []string{"tasks", "ledger", "worker", "provider", "app", "approval"} {
		if _, ok := all[pkg]; !ok {
			t.Fatalf("package %s not found: the walk is broken", pkg)
		}
	}
	for pkg, deps := range all {
		for _, dep := range deps {
			if list, ok := mayImport[pkg]; ok && !allowed(list, dep) {
				t.Errorf("%s imports %s: it may import only %v (docs/DESIGN.md, package map)", pkg, dep, list)
			}
			// Programs are leaves: nothing imports a command or a benchmark.
			for _, leaf := range []string{"cmd", "bench"} {
				if under(dep, leaf) && !under(pkg, leaf) {
					t.Errorf("%s imports %s: nothing outside %s/ imports it", pkg, dep, leaf)
				}
			}
			// app is the wiring: only programs embed it.
			if dep == "app" && !under(pkg, "cmd") && !under(pkg, "bench") {
				t.Errorf("%s imports app: only programs (cmd/, bench/) may", pkg)
			}
		}
	}
}

// TestImportRulesCatch checks the rules refuse what they are meant to, on made-up imports.
func TestImportRulesCatch(t *testing.T) {
	for _, c := range []struct{ pkg, dep string }{
		{"provider", "ledger"}, {"ledger", "worker"}, {"tasks", "provider"}, {"results", "ledger"},
		{"approval", "worker"}, {"worker", "app"}, {"worker", "approval"},
	} {
		if allowed(mayImport[c.pkg], c.dep) {
			t.Errorf("%s may import %s: the rules allow a forbidden import", c.pkg, c.dep)
		}
	}
	if !allowed(mayImport["worker"], "worker/attachments") {
		t.Error("worker may not import worker/attachments")
	}
}
