package docs

import (
	"embed"
	"fmt"
)

// The verification snippets shown on the events page. Each is a whole
// program that TestSnippetsVerify runs against a really signed request;
// the Go one is stored as .txt so that it is not a package of this module.
//
//go:embed snippets/verify.js snippets/verify.py snippets/verify.php snippets/verify.go.txt
var snippetFiles embed.FS

// Snippet is one language's verification program.
type Snippet struct {
	Language, File, Code string
}

// Snippets returns the verification programs, Node, Python, PHP and Go.
func Snippets() ([]Snippet, error) {
	list := []Snippet{
		{"Node", "verify.js", "snippets/verify.js"},
		{"Python", "verify.py", "snippets/verify.py"},
		{"PHP", "verify.php", "snippets/verify.php"},
		{"Go", "verify.go", "snippets/verify.go.txt"},
	}
	for i := range list {
		b, err := snippetFiles.ReadFile(list[i].Code)
		if err != nil {
			return nil, fmt.Errorf("docs: snippet: %w", err)
		}
		list[i].Code = string(b)
	}
	return list, nil
}
