package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SecureKafka is a kfake cluster that, like a production one, takes only
// TLS connections authenticated with SASL SCRAM-SHA-256 and authorizes every
// request with ACLs. Its Kafka (Client, ReadAll, CreateTopics) acts as the
// superuser.
type SecureKafka struct {
	*Kafka
	Cluster *kfake.Cluster
	Addrs   []string // every broker
	CAFile  string   // PEM of the CA that signed the brokers' certificate
	CA      *x509.CertPool
	// With WithClientCerts: a client certificate and key signed by the CA.
	ClientCertFile, ClientKeyFile string
	clientCert                    *tls.Certificate
}

// Superuser of a SecureKafka: it bypasses every ACL.
const (
	SecureAdminUser = "admin"
	SecureAdminPass = "admin-secret"
)

// SecureOption changes what StartSecureKafka starts.
type SecureOption func(*secureCfg)

type secureCfg struct {
	mtls  bool
	extra []kfake.Opt
}

// WithClientCerts makes the brokers require a client certificate signed by
// the CA (mutual TLS); the SecureKafka's ClientCertFile and ClientKeyFile
// hold one.
func WithClientCerts() SecureOption { return func(c *secureCfg) { c.mtls = true } }

// WithKfake adds kfake options, e.g. kfake.Superuser("PLAIN", user, pass)
// for other SASL mechanisms.
func WithKfake(opts ...kfake.Opt) SecureOption {
	return func(c *secureCfg) { c.extra = append(c.extra, opts...) }
}

// StartSecureKafka starts a secured cluster of brokers brokers for t, with
// a CA and server certificate made in t.TempDir, and closes it when t ends.
func StartSecureKafka(t testing.TB, brokers int, opts ...SecureOption) *SecureKafka {
	t.Helper()
	var cfg secureCfg
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	pki := newTestPKI(t)
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, pki.caPEM)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, "kafka", true)}, MinVersion: tls.VersionTLS12}
	k := &SecureKafka{CAFile: caFile, CA: pool}
	if cfg.mtls {
		serverTLS.ClientAuth, serverTLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
		k.ClientCertFile, k.ClientKeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
		cert := pki.leaf(t, "hookstream", false)
		key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		writeFile(t, k.ClientCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
		writeFile(t, k.ClientKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
		k.clientCert = &cert
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(brokers),
		kfake.TLS(serverTLS),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", SecureAdminUser, SecureAdminPass),
		kfake.EnableACLs(),
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
	}, cfg.extra...)...)
	if err != nil {
		t.Fatalf("testenv: secure kafka: %v", err)
	}
	t.Cleanup(c.Close)
	k.Cluster, k.Addrs = c, c.ListenAddrs()
	k.Kafka = &Kafka{Addr: strings.Join(k.Addrs, ","), opts: k.ClientOpts(SecureAdminUser, SecureAdminPass)}
	return k
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// ClientOpts are the options of a client authenticating as user.
func (k *SecureKafka) ClientOpts(user, pass string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(k.Addrs...),
		kgo.DialTLSConfig(k.clientTLS()),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()),
	}
}

func (k *SecureKafka) clientTLS() *tls.Config {
	c := &tls.Config{RootCAs: k.CA, MinVersion: tls.VersionTLS12}
	if k.clientCert != nil {
		c.Certificates = []tls.Certificate{*k.clientCert}
	}
	return c
}

// Flags are the hookstream flags that connect as user.
func (k *SecureKafka) Flags(user, pass string) []string {
	f := []string{
		"--kafka-brokers", strings.Join(k.Addrs, ","),
		"--kafka-tls", "--kafka-tls-ca", k.CAFile,
		"--kafka-sasl-mechanism", "scram-sha-256",
		"--kafka-sasl-username", user, "--kafka-sasl-password", pass,
	}
	if k.clientCert != nil {
		f = append(f, "--kafka-tls-cert", k.ClientCertFile, "--kafka-tls-key", k.ClientKeyFile)
	}
	return f
}

// AddUser creates a SCRAM-SHA-256 user with no ACLs.
func (k *SecureKafka) AddUser(t testing.TB, user, pass string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(k.Client(t)).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: pass}})
	if err == nil {
		err = res[user].Err
	}
	if err != nil {
		t.Fatalf("testenv: add user %s: %v", user, err)
	}
}

// Grant creates the ACLs b describes, as the superuser.
func (k *SecureKafka) Grant(t testing.TB, b *kadm.ACLBuilder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(k.Client(t)).CreateACLs(ctx, b)
	if err != nil {
		t.Fatalf("testenv: create acls: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("testenv: create acl %v %s %s: %v", r.Type, r.Name, r.Operation, r.Err)
		}
	}
}

// testPKI is a CA that signs the test certificates.
type testPKI struct {
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	caPEM []byte
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: tls: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hookstream test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: tls: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: tls: %v", err)
	}
	return &testPKI{ca: ca, key: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf is a certificate signed by the CA: a server's for 127.0.0.1, ::1
// and localhost, or a client's.
func (p *testPKI) leaf(t testing.TB, name string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: tls: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatalf("testenv: tls: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// StartKafkaBrokers starts a plain cluster of n brokers (the embedded
// broker has one), so that topics can have a replication factor above 1.
func StartKafkaBrokers(t testing.TB, n int) *Kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("testenv: kafka cluster: %v", err)
	}
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	return &Kafka{Addr: strings.Join(addrs, ","), opts: []kgo.Opt{kgo.SeedBrokers(addrs...)}}
}

// allowUnsafeTopics lets the roles a test starts run on the embedded
// broker's replication factor 1, unless the test decided otherwise.
func allowUnsafeTopics(cmd *exec.Cmd) {
	const name = "HOOKSTREAM_ALLOW_UNSAFE_TOPICS"
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	for _, kv := range cmd.Env {
		if strings.HasPrefix(kv, name+"=") {
			return
		}
	}
	cmd.Env = append(cmd.Env, name+"=true")
}
