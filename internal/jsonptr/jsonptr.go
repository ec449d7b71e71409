// Package jsonptr builds JSON Pointers (RFC 6901), the "field" of every
// error the API and the validators report.
package jsonptr

import "strings"

var escaper = strings.NewReplacer("~", "~0", "/", "~1")

// Token is "/" and key escaped ("~" as "~0", "/" as "~1"): the pointer to
// key one level below where it is appended.
func Token(key string) string { return "/" + escaper.Replace(key) }

// WriteToken appends Token(key) to b without an intermediate string.
func WriteToken(b *strings.Builder, key string) {
	b.WriteByte('/')
	escaper.WriteString(b, key)
}
