package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// root is the repository root, relative to this package.
const root = ".."

// documents are the Markdown files checked, relative to the root.
func documents(t *testing.T) []string {
	t.Helper()
	docs := []string{"README.md", "deploy/README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		rel, _ := filepath.Rel(root, m)
		docs = append(docs, filepath.ToSlash(rel))
	}
	return docs
}

// outside are references to things that are not in the repository: the product notes the
// project was written from, issue trackers' numbers, work-session steps.
var outside = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`\b(SPEC|PROVIDER|ASYNQ|STYLE)\.md\b`), "a file outside the repository"},
	{regexp.MustCompile(`\bshared/`), "a directory outside the repository"},
	{regexp.MustCompile(`(?i)\bissues? #?[0-9]+\b`), "an issue number"},
	{regexp.MustCompile(`(?i)\bstop [0-9]+\b`), "a work-session step"},
}

// userFiles are files the docs tell the reader to create: they are not in the repository.
var userFiles = map[string]bool{"sendworker-secrets.env": true}

// built are the paths `make build` creates (ignored by git): named by the docs, never committed.
var built = []string{"bin/"}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan   = regexp.MustCompile("`([^`\n]+)`")
	pathLike   = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_./-]*(\.(md|go|ya?ml|env|conf|json|sh|txt)|/)$`)
	externalRe = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:`)
)

// prose returns the lines of a Markdown file outside fenced code blocks, with their numbers.
func prose(text string) map[int]string {
	out := map[int]string{}
	in := false
	for i, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			in = !in
			continue
		}
		if !in {
			out[i+1] = line
		}
	}
	return out
}

// slug is the anchor GitHub gives a heading: lower case, spaces to hyphens, punctuation
// other than hyphens and underscores dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the heading anchors of a Markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range prose(string(data)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			h = strings.ReplaceAll(h, "`", "")
			out[slug(h)] = true
		}
	}
	return out
}

// exists reports whether rel names a file or directory of the repository, read from the
// document's directory or from the root.
func exists(docDir, rel string) (string, bool) {
	for _, base := range []string{docDir, root} {
		p := filepath.Join(base, rel)
		if _, err := os.Stat(p); err == nil {
			abs, _ := filepath.Abs(p)
			top, _ := filepath.Abs(root)
			if strings.HasPrefix(abs, top) {
				return p, true
			}
		}
	}
	return "", false
}

// TestDocsStandAlone: README.md, deploy/README.md and docs/*.md never refer to anything outside
// the repository; every relative Markdown link and every file path they name in code reaches
// a file of the repository, and every #anchor a heading of its target.
func TestDocsStandAlone(t *testing.T) {
	for _, doc := range documents(t) {
		path := filepath.Join(root, doc)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		dir := filepath.Dir(path)
		for i, line := range strings.Split(text, "\n") {
			for _, o := range outside {
				if m := o.re.FindString(line); m != "" {
					t.Errorf("%s:%d: %q is %s", doc, i+1, m, o.what)
				}
			}
		}
		for n, line := range prose(text) {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if externalRe.MatchString(target) {
					continue
				}
				file, frag, _ := strings.Cut(target, "#")
				resolved := path
				if file != "" {
					p := filepath.Join(dir, file)
					if _, err := os.Stat(p); err != nil {
						t.Errorf("%s:%d: link %s: no such file in the repository", doc, n, target)
						continue
					}
					resolved = p
				}
				if frag != "" && strings.HasSuffix(resolved, ".md") && !anchors(t, resolved)[frag] {
					t.Errorf("%s:%d: link %s: no heading with that anchor in %s", doc, n, target, resolved)
				}
			}
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				p := strings.TrimPrefix(m[1], "./")
				// A path has a directory part; a bare name (`secret.yaml` in a table of its
				// directory) is read in its context, not checked.
				if !pathLike.MatchString(p) || !strings.Contains(p, "/") || userFiles[p] || isBuilt(p) {
					continue
				}
				if _, ok := exists(dir, p); !ok {
					t.Errorf("%s:%d: `%s` is not a file of the repository", doc, n, m[1])
				}
			}
		}
	}
}

func isBuilt(p string) bool {
	for _, b := range built {
		if strings.HasPrefix(p, b) {
			return true
		}
	}
	return false
}

// TestREADMEPrerequisites: the README's prerequisites name the Go version of go.mod.
func TestREADMEPrerequisites(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^Prerequisites:.*$`).Find(readme)
	if line == nil {
		t.Fatal("README.md has no Prerequisites: line")
	}
	for _, want := range []string{"Go " + string(m[1]), "redis-server"} {
		if !strings.Contains(string(line), want) {
			t.Errorf("README prerequisites %q do not say %q", line, want)
		}
	}
}

// TestGoSourcesStandAlone: comments, help texts and test names of the Go code do not point at
// the product notes outside the repository either (the contract is docs/PRODUCT.md).
func TestGoSourcesStandAlone(t *testing.T) {
	names := regexp.MustCompile(`\b(SPEC|PROVIDER|ASYNQ|STYLE)\.md\b|\bSPEC\b|\bshared/(SPEC|PROVIDER|ASYNQ|STYLE)`)
	self, _ := filepath.Abs("docs_test.go")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		if abs, _ := filepath.Abs(p); abs == self {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if m := names.FindString(line); m != "" {
				t.Errorf("%s:%d: %q points outside the repository", p, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
