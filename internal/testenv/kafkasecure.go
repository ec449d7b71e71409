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
}

// Superuser of a SecureKafka: it bypasses every ACL.
const (
	SecureAdminUser = "admin"
	SecureAdminPass = "admin-secret"
)

// StartSecureKafka starts a secured cluster of brokers brokers for t, with
// a CA and server certificate made in t.TempDir, and closes it when t ends.
func StartSecureKafka(t testing.TB, brokers int) *SecureKafka {
	t.Helper()
	dir := t.TempDir()
	caPEM, serverCert := selfSignedTLS(t)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := kfake.NewCluster(
		kfake.NumBrokers(brokers),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", SecureAdminUser, SecureAdminPass),
		kfake.EnableACLs(),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("testenv: secure kafka: %v", err)
	}
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	k := &SecureKafka{Cluster: c, Addrs: addrs, CAFile: caFile, CA: pool}
	k.Kafka = &Kafka{Addr: strings.Join(addrs, ","), opts: k.ClientOpts(SecureAdminUser, SecureAdminPass)}
	return k
}

// ClientOpts are the options of a client authenticating as user.
func (k *SecureKafka) ClientOpts(user, pass string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(k.Addrs...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: k.CA, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()),
	}
}

// Flags are the hookstream flags that connect as user.
func (k *SecureKafka) Flags(user, pass string) []string {
	return []string{
		"--kafka-brokers", strings.Join(k.Addrs, ","),
		"--kafka-tls", "--kafka-tls-ca", k.CAFile,
		"--kafka-sasl-mechanism", "scram-sha-256",
		"--kafka-sasl-username", user, "--kafka-sasl-password", pass,
	}
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

// selfSignedTLS makes a CA and a certificate for 127.0.0.1 and localhost
// signed by it.
func selfSignedTLS(t testing.TB) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatalf("testenv: tls: %v", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hookstream test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(err)
	ca, err = x509.ParseCertificate(caDER)
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kafka"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	must(err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
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
