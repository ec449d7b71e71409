package sender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/hookstream/hookstream/internal/netguard"
	"github.com/hookstream/hookstream/signature"
)

// Error classes, as the delivery log shows them: an operator filters on the
// class, not on transport error text that differs by OS and Go version.
const (
	ClassNone               = ""
	ClassHTTPStatus         = "http_status"
	ClassTimeout            = "timeout"
	ClassDNS                = "dns"
	ClassConnectionRefused  = "connection_refused"
	ClassConnectionReset    = "connection_reset"
	ClassTLS                = "tls"
	ClassRefusedDestination = "refused_destination"
	ClassInvalidRequest     = "invalid_request"
	ClassRedirect           = "redirect"
	ClassCanceled           = "canceled"
	ClassConnection         = "connection" // any other transport failure
)

// Class names why res failed; ClassNone for a 2xx.
func Class(res Result) string {
	err := res.Err
	switch {
	case res.Outcome == Delivered:
		return ClassNone
	case errors.Is(err, ErrRedirect):
		return ClassRedirect
	case res.Status != 0:
		return ClassHTTPStatus
	case err == nil:
		return ClassConnection
	case errors.Is(err, ErrTimeout):
		return ClassTimeout
	case errors.Is(err, netguard.ErrDenied):
		return ClassRefusedDestination
	case errors.Is(err, ErrInvalidRequest):
		return ClassInvalidRequest
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ClassConnectionReset
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return ClassDNS
	}
	var (
		rh    tls.RecordHeaderError
		alert tls.AlertError
		ver   *tls.CertificateVerificationError
		unk   x509.UnknownAuthorityError
		host  x509.HostnameError
		inv   x509.CertificateInvalidError
	)
	if errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &ver) ||
		errors.As(err, &unk) || errors.As(err, &host) || errors.As(err, &inv) {
		return ClassTLS
	}
	return ClassConnection
}

// Redacted is the value logged in place of a secret header.
const Redacted = "[redacted]"

// redactedHeaders copies h for the attempts log, with the signatures and
// credentials replaced (custom ones such as X-Api-Key too): the log is
// read by people who must not be able to forge a request from it, nor
// read a credential the endpoint's own page masks.
func redactedHeaders(h http.Header, seedSignature string) map[string]string {
	secret := func(k string) bool {
		return k == signature.HeaderSignature || k == seedSignature || CredentialHeader(k)
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		if secret(k) {
			out[k] = Redacted
			continue
		}
		out[k] = v[0]
	}
	return out
}
