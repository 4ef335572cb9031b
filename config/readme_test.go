package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's configuration table from Reference()")

// TestREADMEConfigTable keeps the README's configuration table equal to the
// code's. Regenerate with: go test ./config -run TestREADMEConfigTable -update-readme
func TestREADMEConfigTable(t *testing.T) {
	const path = "../README.md"
	const begin, end = "<!-- config-table:begin -->\n", "<!-- config-table:end -->"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", begin, end)
	}
	want := ReferenceMarkdown()
	got := readme[i+len(begin) : j]
	if got == want {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(path, []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md configuration table is stale; run: go test ./config -run TestREADMEConfigTable -update-readme")
}
