package kafkasec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/kafkasec"
	"github.com/hookstream/hookstream/internal/testenv"
)

func TestValidate(t *testing.T) {
	tls := kafkasec.TLS{Enabled: true}
	up := kafkasec.SASL{Username: kafkasec.Value{Literal: "u"}, Password: kafkasec.Value{Literal: "p"}}
	with := func(m kafkasec.Mechanism, s kafkasec.SASL) kafkasec.SASL { s.Mechanism = m; return s }
	tests := []struct {
		name string
		cfg  kafkasec.Config
		want string // "" = valid
	}{
		{"nothing", kafkasec.Config{}, ""},
		{"tls only", kafkasec.Config{TLS: tls}, ""},
		{"ca without tls", kafkasec.Config{TLS: kafkasec.TLS{CAFile: "ca.pem"}}, "--kafka-tls"},
		{"cert without key", kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CertFile: "c.pem"}}, "--kafka-tls-key"},
		{"scram without tls", kafkasec.Config{SASL: with(kafkasec.ScramSHA512, up)}, ""},
		{"plain without tls", kafkasec.Config{SASL: with(kafkasec.Plain, up)}, "clear text"},
		{"plain over tls", kafkasec.Config{TLS: tls, SASL: with(kafkasec.Plain, up)}, ""},
		{"scram without password", kafkasec.Config{TLS: tls, SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA256, Username: kafkasec.Value{Literal: "u"}}}, "password"},
		{"password without mechanism", kafkasec.Config{SASL: kafkasec.SASL{Password: kafkasec.Value{File: "/p"}}}, "--kafka-sasl-mechanism is empty"},
		{"oauth with both sources", kafkasec.Config{TLS: tls, SASL: kafkasec.SASL{Mechanism: kafkasec.OAuthBearer, TokenFile: "t", TokenCommand: "echo t"}}, "exactly one"},
		{"oauth from command", kafkasec.Config{TLS: tls, SASL: kafkasec.SASL{Mechanism: kafkasec.OAuthBearer, TokenCommand: "echo t"}}, ""},
		{"msk iam without keys", kafkasec.Config{TLS: tls, SASL: kafkasec.SASL{Mechanism: kafkasec.AWSMSKIAM}}, "AWS_ACCESS_KEY_ID"},
		{"msk iam", kafkasec.Config{TLS: tls, SASL: kafkasec.SASL{Mechanism: kafkasec.AWSMSKIAM, AWS: kafkasec.AWS{AccessKeyID: "AKIA", SecretAccessKey: "s"}}}, ""},
		{"unknown mechanism", kafkasec.Config{TLS: tls, SASL: with("gssapi", up)}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, kafkasec.ErrConfig)):
				t.Fatalf("Validate = %v, want ErrConfig naming %q", err, tt.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-very-secret"
	cfg := kafkasec.Config{SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA256, Username: kafkasec.Value{Literal: "u"}, Password: kafkasec.Value{Literal: pw}}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "kafka", cfg, "password", cfg.SASL.Password.Literal)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "kafka", cfg, "password", cfg.SASL.Password.Literal)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.SASL.Password.Literal), logs.String()} {
		if strings.Contains(s, pw) {
			t.Fatalf("secret printed: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Fatalf("no redaction marker, the check above may be vacuous: %s", s)
		}
	}
}

// TestSCRAMOverTLS connects with the options of a Config to a cluster that
// takes only TLS + SCRAM: the password comes from a file (a mounted
// Secret), and a wrong one fails the request instead of hanging it.
func TestSCRAMOverTLS(t *testing.T) {
	k := testenv.StartSecureKafka(t, 1)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(testenv.SecureAdminPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	connect := func(cfg kafkasec.Config) error {
		opts, err := cfg.Opts()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(k.Addrs...))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	good := kafkasec.Config{
		TLS:  kafkasec.TLS{Enabled: true, CAFile: k.CAFile},
		SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA256, Username: kafkasec.Value{Literal: testenv.SecureAdminUser}, Password: kafkasec.Value{File: pwFile}},
	}
	if err := connect(good); err != nil {
		t.Fatalf("TLS + SCRAM with the password file: %v", err)
	}
	bad := good
	bad.SASL.Password = kafkasec.Value{Literal: "wrong"}
	if err := connect(bad); err == nil {
		t.Fatal("a wrong password connected")
	}
	noCA := good
	noCA.TLS.CAFile = "" // the system roots do not trust the test CA
	if err := connect(noCA); err == nil {
		t.Fatal("connected without trusting the broker's CA")
	}
	if _, err := (kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}}).Opts(); err == nil || !strings.Contains(err.Error(), "--kafka-tls-ca") {
		t.Fatalf("missing CA file: err = %v, want one naming --kafka-tls-ca", err)
	}
}

// TestMechanismsAgainstBrokers connects with each mechanism kfake serves,
// and with mutual TLS, to brokers that require it.
func TestMechanismsAgainstBrokers(t *testing.T) {
	k := testenv.StartSecureKafka(t, 1, testenv.WithClientCerts(), testenv.WithKfake(
		kfake.Superuser("PLAIN", "plain-user", "plain-pw"),
		kfake.Superuser("SCRAM-SHA-512", "scram512-user", "scram512-pw"),
	))
	lit := func(s string) kafkasec.Value { return kafkasec.Value{Literal: kafkasec.Secret(s)} }
	mtls := kafkasec.TLS{Enabled: true, CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile}
	tests := []struct {
		name string
		cfg  kafkasec.Config
		ok   bool
	}{
		{"plain", kafkasec.Config{TLS: mtls, SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, Username: lit("plain-user"), Password: lit("plain-pw")}}, true},
		{"scram-sha-512", kafkasec.Config{TLS: mtls, SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA512, Username: lit("scram512-user"), Password: lit("scram512-pw")}}, true},
		{"scram-sha-256 with the 512 user", kafkasec.Config{TLS: mtls, SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA256, Username: lit("scram512-user"), Password: lit("scram512-pw")}}, false},
		{"without the client certificate", kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CAFile: k.CAFile}, SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, Username: lit("plain-user"), Password: lit("plain-pw")}}, false},
		{"server name not in the certificate", kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile, ServerName: "kafka.example"},
			SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, Username: lit("plain-user"), Password: lit("plain-pw")}}, false},
		{"server name in the certificate", kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CAFile: k.CAFile, CertFile: k.ClientCertFile, KeyFile: k.ClientKeyFile, ServerName: "localhost"},
			SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, Username: lit("plain-user"), Password: lit("plain-pw")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.cfg.Opts()
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(k.Addrs...))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.Ping(ctx); (err == nil) != tt.ok {
				t.Fatalf("ping: %v, want success %v", err, tt.ok)
			}
		})
	}
}
