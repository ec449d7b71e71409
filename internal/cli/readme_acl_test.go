package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/hookstream/hookstream/internal/kafkaacl"
	"github.com/hookstream/hookstream/topic"
)

// aclTableRow is g as a row of README's ACL table.
func aclTableRow(role string, g kafkaacl.Grant) string {
	r := g.Row()
	return "| " + role + " | `" + r[0] + "` | " + r[1] + " | " + r[2] + " | " + r[3] + " |"
}

// TestREADMEACLTable keeps README's least-privilege table equal to what
// `hookstream kafka-acls` grants and the roles probe.
func TestREADMEACLTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	n := 0
	for _, role := range kafkaacl.Roles {
		gs, err := kafkaacl.Grants(role, aclNames(topic.DefaultPrefix))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			n++
			if row := aclTableRow(role, g); !strings.Contains(readme, row+"\n") {
				t.Errorf("README lacks the ACL row\n%s", row)
			}
		}
	}
	if got := strings.Count(readme, "\n| ") - strings.Count(strings.SplitN(readme, "### Least privilege", 2)[0], "\n| "); got < n {
		t.Errorf("README's ACL section has %d table rows, want at least %d", got, n)
	}
}
