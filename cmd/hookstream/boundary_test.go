package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestPublicAPINamesNoInternalType keeps every package outside internal/
// usable from another module: an exported function, type or method whose
// signature names an internal package's type can be called by nobody else.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Name}} {{len .GoFiles}}", "github.com/hookstream/hookstream/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var public []string
	var internalNames []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		path, name, files := f[0], f[1], f[2]
		switch {
		case strings.Contains(path, "/internal/"):
			internalNames = append(internalNames, regexp.QuoteMeta(name))
		case name != "main" && files != "0":
			public = append(public, path)
		}
	}
	// A qualified identifier such as "record.Delivery" in a declaration.
	uses := regexp.MustCompile(`\b(` + strings.Join(internalNames, "|") + `)\.[A-Z]\w*`)
	for _, pkg := range public {
		doc, err := exec.Command("go", "doc", "-all", pkg).Output()
		if err != nil {
			t.Fatalf("go doc %s: %v", pkg, err)
		}
		for _, line := range strings.Split(string(doc), "\n") {
			code := strings.TrimSpace(line)
			if !strings.HasPrefix(code, "func ") && !strings.HasPrefix(code, "type ") && !isMember(line) {
				continue
			}
			if m := uses.FindString(code); m != "" {
				t.Errorf("%s: %q names %s from an internal package", pkg, code, m)
			}
		}
	}
}

// isMember reports whether a go doc line is a field or an interface method
// of an exported type (indented code, not prose).
func isMember(line string) bool {
	return strings.HasPrefix(line, "\t") && len(line) > 1 && line[1] >= 'A' && line[1] <= 'Z' && !strings.HasPrefix(strings.TrimSpace(line), "//")
}
