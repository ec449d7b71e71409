package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/kafkasec"
)

// kafkaSecFlags are the --kafka-tls* and --kafka-sasl-* flags of every
// command that talks to Kafka.
type kafkaSecFlags struct {
	cfg       kafkasec.Config
	mechanism string
	user      string
	pass      string
}

func (k *kafkaSecFlags) register(fs *flag.FlagSet) {
	t, s := &k.cfg.TLS, &k.cfg.SASL
	fs.BoolVar(&t.Enabled, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&t.CAFile, "kafka-tls-ca", "", "PEM file of the CA certificates to trust for Kafka (default: the system's)")
	fs.StringVar(&t.CertFile, "kafka-tls-cert", "", "PEM client certificate for mutual TLS (with --kafka-tls-key)")
	fs.StringVar(&t.KeyFile, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	fs.StringVar(&t.ServerName, "kafka-tls-server-name", "", "name to verify in the brokers' certificates (default: the broker's host)")
	var names []string
	for _, m := range kafkasec.Mechanisms {
		names = append(names, string(m))
	}
	fs.StringVar(&k.mechanism, "kafka-sasl-mechanism", "", "SASL mechanism: "+strings.Join(names, ", ")+" (default: no SASL)")
	fs.StringVar(&k.user, "kafka-sasl-username", "", "SASL username (plain, scram-*)")
	fs.StringVar(&s.Username.File, "kafka-sasl-username-file", "", "file holding the SASL username, read at each authentication")
	fs.StringVar(&k.pass, "kafka-sasl-password", "", "SASL password (prefer --kafka-sasl-password-file)")
	fs.StringVar(&s.Password.File, "kafka-sasl-password-file", "", "file holding the SASL password (a mounted Secret), read at each authentication")
	fs.StringVar(&s.TokenFile, "kafka-sasl-oauth-token-file", "", "oauthbearer: file holding the token, read at each authentication")
	fs.StringVar(&s.TokenCommand, "kafka-sasl-oauth-token-command", "", "oauthbearer: shell command printing a token, run at each authentication")
}

// opts returns the client options of the flags; AWS MSK IAM credentials
// come from the standard AWS environment variables.
func (k *kafkaSecFlags) opts(env Env) ([]kgo.Opt, error) {
	cfg := k.cfg
	cfg.SASL.Mechanism = kafkasec.Mechanism(strings.ToLower(k.mechanism))
	if k.user != "" && cfg.SASL.Username.File != "" || k.pass != "" && cfg.SASL.Password.File != "" {
		return nil, fmt.Errorf("%w: give a SASL credential either literally or as a file, not both", ErrUsage)
	}
	cfg.SASL.Username.Literal = kafkasec.Secret(k.user)
	cfg.SASL.Password.Literal = kafkasec.Secret(k.pass)
	if cfg.SASL.Mechanism == kafkasec.AWSMSKIAM {
		get := func(name string) string {
			if env.LookupEnv == nil {
				return ""
			}
			v, _ := env.LookupEnv(name)
			return v
		}
		cfg.SASL.AWS = kafkasec.AWS{
			AccessKeyID:     get("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: kafkasec.Secret(get("AWS_SECRET_ACCESS_KEY")),
			SessionToken:    kafkasec.Secret(get("AWS_SESSION_TOKEN")),
		}
	}
	opts, err := cfg.Opts()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return opts, nil
}
