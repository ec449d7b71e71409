// Package txnid names Kafka transactional ids unique to a process.
package txnid

import (
	"crypto/rand"
	"encoding/hex"
	"os"
)

// New returns "hookstream-<role>-<hostname>-<8 random hex>".
//
// Why not a stable id per replica: fencing through a reused id only works
// when every replica has a distinct, stable name, and two processes that
// end up with the same id (two of them on one host, a Deployment's pod
// rescheduled while the old one still runs) would fence each other in a
// loop. The cost is that a crashed process's open transaction is aborted
// only when it times out, delaying read_committed readers that long; an
// operator who wants immediate fencing on restart passes a stable id per
// replica (a StatefulSet pod name) instead.
func New(role string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "hookstream-" + role + "-" + host + "-" + hex.EncodeToString(b[:])
}
