package testenv

import (
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
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTLS is a redis-server that speaks only TLS and requires a client
// certificate, signed by a CA of the test's own. The PEM files are in the
// test's temporary directory.
type RedisTLS struct {
	*Redis               // URL is rediss://; Client is a TLS client with the client certificate
	CA, Cert, Key string // CA certificate, client certificate and key files
}

// StartRedisTLS starts a redis-server listening with TLS only on a free
// port of 127.0.0.1 (its certificate names 127.0.0.1 and localhost), and
// stops it when t ends.
func StartRedisTLS(t testing.TB) *RedisTLS {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newRedisCert(t, nil, nil, "hookstream test CA")
	write := func(name string, der []byte, key *ecdsa.PrivateKey) (certFile, keyFile string) {
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writeRedisPEM(t, certFile, "CERTIFICATE", der)
		if key != nil {
			kb, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				t.Fatalf("testenv: %v", err)
			}
			writeRedisPEM(t, keyFile, "EC PRIVATE KEY", kb)
		}
		return certFile, keyFile
	}
	caFile, _ := write("ca", ca.Raw, nil)
	srv, srvKey := newRedisCert(t, ca, caKey, "redis")
	srvFile, srvKeyFile := write("server", srv.Raw, srvKey)
	cl, clKey := newRedisCert(t, ca, caKey, "hookstream")
	clFile, clKeyFile := write("client", cl.Raw, clKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	pair, err := tls.LoadX509KeyPair(clFile, clKeyFile)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	port := FreePort(t)
	r := startRedis(t, port, []string{
		"--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", srvFile, "--tls-key-file", srvKeyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "yes",
	}, &redis.Options{TLSConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
	r.URL = "rediss://" + r.Addr + "/0"
	return &RedisTLS{Redis: r, CA: caFile, Cert: clFile, Key: clKeyFile}
}

// newRedisCert returns a certificate for name, signed by parent (self-signed, a
// CA, when parent is nil), valid for 127.0.0.1, ::1 and localhost.
func newRedisCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatalf("testenv: certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return cert, key
}

func writeRedisPEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
