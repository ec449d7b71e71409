package sender

import (
	"crypto/tls"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookstream/hookstream/signature"
)

// Defaults of the options. A zero or negative value given to an option
// keeps its default.
const (
	DefaultConnectTimeout      = 5 * time.Second
	DefaultTimeout             = 15 * time.Second
	DefaultMaxResponseBody     = 64 << 10
	DefaultMaxIdleConnsPerHost = 64
	DefaultMaxRetryAfter       = time.Hour
)

// LoggedBody is how much of a response body Result.Body keeps, for the
// attempts log.
const LoggedBody = 1 << 10

// Option configures a Sender.
type Option func(*config)

type config struct {
	connectTimeout time.Duration
	timeout        time.Duration
	maxBody        int64
	allowPrivate   bool
	userAgent      string
	signer         *signature.Signer
	maxIdlePerHost int
	maxRetryAfter  time.Duration
	tls            *tls.Config
	tracer         trace.TracerProvider
	propagator     propagation.TextMapPropagator
}

// WithConnectTimeout bounds establishing the TCP connection and, separately,
// the TLS handshake. Default DefaultConnectTimeout (5s).
func WithConnectTimeout(d time.Duration) Option {
	return Option(func(c *config) {
		if d > 0 {
			c.connectTimeout = d
		}
	})
}

// WithTimeout bounds a whole attempt: connect, send, wait for the answer and
// read its body. Request.Timeout overrides it per request. Default
// DefaultTimeout (15s).
func WithTimeout(d time.Duration) Option {
	return Option(func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	})
}

// WithMaxResponseBody is how many bytes of a response body are read (the
// first LoggedBody of them kept) before the body is closed. Reading a small
// body to the end lets the connection be reused; a longer one costs its
// connection instead of unbounded reading. Default DefaultMaxResponseBody
// (64 KiB).
func WithMaxResponseBody(n int64) Option {
	return Option(func(c *config) {
		if n > 0 {
			c.maxBody = n
		}
	})
}

// WithAllowPrivate lets requests reach addresses netguard refuses:
// loopback, private, link-local, metadata and the rest. Default false: the
// dialer checks every resolved address with netguard.Control, so a refused
// destination fails with Outcome Refused and netguard.ErrDenied. Turn it
// on for development and tests only.
func WithAllowPrivate(allow bool) Option {
	return Option(func(c *config) { c.allowPrivate = allow })
}

// WithUserAgent sets the user-agent header. Default "Hookstream/<version>",
// the version being the main module's version from the build info, or "dev"
// when the build has none.
func WithUserAgent(ua string) Option {
	return Option(func(c *config) {
		if ua != "" {
			c.userAgent = ua
		}
	})
}

// WithSigner sets the signer, which also decides the brand of the seed
// scheme's headers. Default signature.NewSigner() (brand "Hookstream").
func WithSigner(s *signature.Signer) Option {
	return Option(func(c *config) {
		if s != nil {
			c.signer = s
		}
	})
}

// WithMaxIdleConnsPerHost is how many idle keep-alive connections are kept
// per destination host, so that many lanes posting to one receiver reuse
// connections instead of dialing. Default DefaultMaxIdleConnsPerHost (64).
func WithMaxIdleConnsPerHost(n int) Option {
	return Option(func(c *config) {
		if n > 0 {
			c.maxIdlePerHost = n
		}
	})
}

// WithMaxRetryAfter caps Result.RetryAfter, so a receiver cannot park a
// delivery for days. Default DefaultMaxRetryAfter (1h).
func WithMaxRetryAfter(d time.Duration) Option {
	return Option(func(c *config) {
		if d > 0 {
			c.maxRetryAfter = d
		}
	})
}

// WithTLSConfig sets the TLS client configuration, e.g. extra root CAs.
// Default nil: the system roots.
func WithTLSConfig(cfg *tls.Config) Option {
	return Option(func(c *config) { c.tls = cfg })
}

// WithTracerProvider sets where the client span of each attempt goes.
// Default otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return Option(func(c *config) {
		if tp != nil {
			c.tracer = tp
		}
	})
}

// WithPropagator sets how trace context is read from Request.Traceparent
// and written into the request headers. Default otel.GetTextMapPropagator().
func WithPropagator(p propagation.TextMapPropagator) Option {
	return Option(func(c *config) {
		if p != nil {
			c.propagator = p
		}
	})
}
