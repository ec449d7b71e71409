// Package kafkasec turns Kafka connection security settings (TLS, mutual
// TLS, SASL PLAIN, SCRAM, OAUTHBEARER, AWS MSK IAM) into franz-go client
// options. Secrets are read when a connection authenticates, not once at
// start, so a rotated Kubernetes Secret mounted as a file is picked up
// without a restart.
package kafkasec

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Mechanism is a SASL mechanism, as spelled in --kafka-sasl-mechanism.
type Mechanism string

// The supported SASL mechanisms; None turns SASL off.
const (
	None        Mechanism = ""
	Plain       Mechanism = "plain"
	ScramSHA256 Mechanism = "scram-sha-256"
	ScramSHA512 Mechanism = "scram-sha-512"
	OAuthBearer Mechanism = "oauthbearer"
	AWSMSKIAM   Mechanism = "aws-msk-iam"
)

// Mechanisms lists the mechanisms a user may name.
var Mechanisms = []Mechanism{Plain, ScramSHA256, ScramSHA512, OAuthBearer, AWSMSKIAM}

// ErrConfig marks a configuration that cannot work.
var ErrConfig = errors.New("kafka security")

// Secret is a string that never prints: fmt, %v and slog show it redacted.
type Secret string

func (Secret) String() string                 { return "[redacted]" }
func (Secret) GoString() string               { return "[redacted]" }
func (Secret) LogValue() slog.Value           { return slog.StringValue("[redacted]") }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value is either a literal or the path of a file holding it (a mounted
// Kubernetes Secret), read each time it is needed.
type Value struct {
	Literal Secret
	File    string
}

func (v Value) set() bool { return v.Literal != "" || v.File != "" }

// read returns the value, trimming the newline files usually end with.
func (v Value) read() (string, error) {
	if v.File == "" {
		return string(v.Literal), nil
	}
	b, err := os.ReadFile(v.File)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", v.File, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// TLS is the transport's TLS configuration.
type TLS struct {
	Enabled    bool
	CAFile     string // PEM roots; "" uses the system's
	CertFile   string // client certificate (mutual TLS), with KeyFile
	KeyFile    string
	ServerName string // "" uses the broker's host name
}

// AWS are the credentials AWS MSK IAM signs with.
type AWS struct {
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret
}

// SASL is the authentication configuration.
type SASL struct {
	Mechanism Mechanism
	Username  Value
	Password  Value
	// OAUTHBEARER: the token is read from TokenFile, or is the standard
	// output of TokenCommand (run by sh -c), for every authentication.
	TokenFile    string
	TokenCommand string
	AWS          AWS
}

// Config is a client's security configuration.
type Config struct {
	TLS  TLS
	SASL SASL
}

// Validate reports a configuration that cannot work, naming the setting.
func (c Config) Validate() error {
	t, s := c.TLS, c.SASL
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "") {
		return fmt.Errorf("%w: TLS settings given but TLS is off (set --kafka-tls)", ErrConfig)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%w: --kafka-tls-cert and --kafka-tls-key go together", ErrConfig)
	}
	switch s.Mechanism {
	case None:
		if s.Username.set() || s.Password.set() || s.TokenFile != "" || s.TokenCommand != "" {
			return fmt.Errorf("%w: SASL credentials given but --kafka-sasl-mechanism is empty", ErrConfig)
		}
	case Plain, ScramSHA256, ScramSHA512:
		if !s.Username.set() || !s.Password.set() {
			return fmt.Errorf("%w: --kafka-sasl-mechanism %s needs a username and a password (--kafka-sasl-username[-file], --kafka-sasl-password[-file])", ErrConfig, s.Mechanism)
		}
	case OAuthBearer:
		if (s.TokenFile == "") == (s.TokenCommand == "") {
			return fmt.Errorf("%w: --kafka-sasl-mechanism oauthbearer needs exactly one of --kafka-sasl-oauth-token-file and --kafka-sasl-oauth-token-command", ErrConfig)
		}
	case AWSMSKIAM:
		if s.AWS.AccessKeyID == "" || s.AWS.SecretAccessKey == "" {
			return fmt.Errorf("%w: --kafka-sasl-mechanism aws-msk-iam needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: unknown --kafka-sasl-mechanism %q (want one of %v)", ErrConfig, s.Mechanism, Mechanisms)
	}
	// These mechanisms send the secret itself, or a bearer token, in the
	// clear; SCRAM proves knowledge of the password without sending it.
	if !t.Enabled && (s.Mechanism == Plain || s.Mechanism == OAuthBearer || s.Mechanism == AWSMSKIAM) {
		return fmt.Errorf("%w: --kafka-sasl-mechanism %s without TLS would send credentials in clear text: set --kafka-tls", ErrConfig, s.Mechanism)
	}
	return nil
}

// Opts validates c, checks that its files can be read, and returns the
// client options that apply it.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if c.TLS.Enabled {
		cfg, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.SASL.Mechanism != None {
		if err := c.SASL.readable(); err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(c.SASL.mechanism()))
	}
	return opts, nil
}

func (t TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --kafka-tls-ca: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --kafka-tls-ca: no PEM certificate in %s", ErrConfig, t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			return nil, fmt.Errorf("%w: --kafka-tls-cert/--kafka-tls-key: %w", ErrConfig, err)
		}
		// Loaded per handshake, so a renewed certificate (cert-manager,
		// Strimzi's client CA) is used without a restart.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka client certificate: %w", err)
			}
			return &c, nil
		}
	}
	return cfg, nil
}

// readable fails at start on a credential file that cannot be read, instead
// of at the first connection.
func (s SASL) readable() error {
	for _, f := range []struct{ flag, path string }{
		{"--kafka-sasl-username-file", s.Username.File},
		{"--kafka-sasl-password-file", s.Password.File},
		{"--kafka-sasl-oauth-token-file", s.TokenFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, f.flag, err)
		}
	}
	return nil
}

func (s SASL) userPass() (string, string, error) {
	u, err := s.Username.read()
	if err != nil {
		return "", "", fmt.Errorf("kafka sasl username: %w", err)
	}
	p, err := s.Password.read()
	if err != nil {
		return "", "", fmt.Errorf("kafka sasl password: %w", err)
	}
	return u, p, nil
}

func (s SASL) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case Plain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			u, p, err := s.userPass()
			return plain.Auth{User: u, Pass: p}, err
		})
	case ScramSHA256, ScramSHA512:
		fn := func(context.Context) (scram.Auth, error) {
			u, p, err := s.userPass()
			return scram.Auth{User: u, Pass: p}, err
		}
		if s.Mechanism == ScramSHA512 {
			return scram.Sha512(fn)
		}
		return scram.Sha256(fn)
	case OAuthBearer:
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			tok, err := s.token(ctx)
			return oauth.Auth{Token: tok}, err
		})
	default: // AWSMSKIAM; Validate refused anything else
		return aws.ManagedStreamingIAM(func(context.Context) (aws.Auth, error) {
			return aws.Auth{AccessKey: s.AWS.AccessKeyID, SecretKey: string(s.AWS.SecretAccessKey), SessionToken: string(s.AWS.SessionToken)}, nil
		})
	}
}

// tokenCommandTimeout bounds an OAUTHBEARER token command, so a stuck
// helper fails the connection instead of hanging it.
const tokenCommandTimeout = 30 * time.Second

func (s SASL) token(ctx context.Context) (string, error) {
	if s.TokenFile != "" {
		tok, err := Value{File: s.TokenFile}.read()
		if err != nil {
			return "", fmt.Errorf("kafka oauth token: %w", err)
		}
		return strings.TrimSpace(tok), nil
	}
	ctx, cancel := context.WithTimeout(ctx, tokenCommandTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", s.TokenCommand)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// The command's stderr may help; its stdout may be a token.
		return "", fmt.Errorf("kafka oauth token command: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" {
		return "", errors.New("kafka oauth token command printed nothing")
	}
	return tok, nil
}
