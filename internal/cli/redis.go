package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/hookstream/hookstream/internal/config"
)

// defaultRedisURL is --redis-url's default: a single node on this host.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// redisFlags are the flags that say how to reach Redis: a single node
// (--redis-url), a Cluster (--redis-cluster-addrs) or a Sentinel-managed
// primary (--redis-sentinel-master, --redis-sentinel-addrs), each with TLS
// and an ACL user. Every password may come from a file instead, as
// Kubernetes mounts Secrets.
type redisFlags struct {
	url              string
	clusterAddrs     config.StringList
	sentinelMaster   string
	sentinelAddrs    config.StringList
	username         string
	password         string
	passwordFile     string
	sentinelUsername string
	sentinelPassword string
	sentinelPassFile string
	tls              bool
	tlsCA            string
	tlsCert          string
	tlsKey           string
	tlsServerName    string
}

func (r *redisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "redis-url", defaultRedisURL, "single-node Redis URL: redis://[user:password@]host:port/db, rediss:// for TLS (go-redis syntax)")
	fs.Var(&r.clusterAddrs, "redis-cluster-addrs", "comma-separated seed nodes of a Redis Cluster (host:port); replaces --redis-url")
	fs.StringVar(&r.sentinelMaster, "redis-sentinel-master", "", "name of the Sentinel-monitored primary; with --redis-sentinel-addrs, replaces --redis-url")
	fs.Var(&r.sentinelAddrs, "redis-sentinel-addrs", "comma-separated Sentinel addresses (host:port)")
	fs.StringVar(&r.username, "redis-username", "", "Redis ACL user (overrides the URL's)")
	fs.StringVar(&r.password, "redis-password", "", "Redis password (overrides the URL's); prefer --redis-password-file")
	fs.StringVar(&r.passwordFile, "redis-password-file", "", "file holding the Redis password (a mounted Secret)")
	fs.StringVar(&r.sentinelUsername, "redis-sentinel-username", "", "ACL user of the Sentinels, when they require one")
	fs.StringVar(&r.sentinelPassword, "redis-sentinel-password", "", "password of the Sentinels; prefer --redis-sentinel-password-file")
	fs.StringVar(&r.sentinelPassFile, "redis-sentinel-password-file", "", "file holding the Sentinels' password")
	fs.BoolVar(&r.tls, "redis-tls", false, "connect with TLS (implied by a rediss:// URL and by the other --redis-tls-* flags)")
	fs.StringVar(&r.tlsCA, "redis-tls-ca", "", "PEM file of the CA that signed Redis's certificate (default: the system's roots)")
	fs.StringVar(&r.tlsCert, "redis-tls-cert", "", "PEM client certificate, for Redis servers that require one (tls-auth-clients)")
	fs.StringVar(&r.tlsKey, "redis-tls-key", "", "PEM key of --redis-tls-cert")
	fs.StringVar(&r.tlsServerName, "redis-tls-server-name", "", "name to verify Redis's certificate against (default: the host dialled)")
}

// validate checks the flags without reading any file; errors never quote
// a URL, which may hold a password.
func (r *redisFlags) validate() error {
	_, err := r.options()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return nil
}

// errRedisURL is what a malformed --redis-url reports: go-redis's and
// net/url's errors quote the URL, password included.
var errRedisURL = errors.New("--redis-url is not a valid Redis URL (redis://[user:password@]host:port/db or rediss://...)")

// options are the client options the flags describe, files not read yet.
func (r *redisFlags) options() (*redis.UniversalOptions, error) {
	cluster, sentinel := len(r.clusterAddrs) > 0, r.sentinelMaster != "" || len(r.sentinelAddrs) > 0
	o := &redis.UniversalOptions{}
	switch {
	case cluster && sentinel:
		return nil, errors.New("--redis-cluster-addrs and --redis-sentinel-* exclude each other")
	case (cluster || sentinel) && r.url != defaultRedisURL:
		return nil, errors.New("--redis-url names a single node: give it, or --redis-cluster-addrs, or --redis-sentinel-*, not both")
	case sentinel && (r.sentinelMaster == "" || len(r.sentinelAddrs) == 0):
		return nil, errors.New("--redis-sentinel-master and --redis-sentinel-addrs go together")
	case cluster:
		o.Addrs, o.IsClusterMode = r.clusterAddrs, true
	case sentinel:
		o.Addrs, o.MasterName = r.sentinelAddrs, r.sentinelMaster
		o.SentinelUsername, o.SentinelPassword = r.sentinelUsername, r.sentinelPassword
	default:
		u, err := redis.ParseURL(r.url)
		if err != nil {
			return nil, errRedisURL
		}
		o.Addrs, o.DB = []string{u.Addr}, u.DB
		o.Username, o.Password, o.TLSConfig = u.Username, u.Password, u.TLSConfig
	}
	if r.password != "" && r.passwordFile != "" {
		return nil, errors.New("give --redis-password or --redis-password-file, not both")
	}
	if r.sentinelPassword != "" && r.sentinelPassFile != "" {
		return nil, errors.New("give --redis-sentinel-password or --redis-sentinel-password-file, not both")
	}
	if (r.tlsCert == "") != (r.tlsKey == "") {
		return nil, errors.New("--redis-tls-cert and --redis-tls-key go together")
	}
	if r.username != "" {
		o.Username = r.username
	}
	if r.password != "" {
		o.Password = r.password
	}
	if r.tls || r.tlsCA != "" || r.tlsCert != "" || r.tlsServerName != "" {
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{}
		}
	}
	if o.TLSConfig != nil {
		o.TLSConfig.MinVersion = tls.VersionTLS12
		if r.tlsServerName != "" {
			o.TLSConfig.ServerName = r.tlsServerName
		}
	}
	return o, nil
}

// client builds the Redis client: a *redis.Client, *redis.ClusterClient or
// Sentinel-backed failover client behind one interface. It reads the
// password and TLS files now, so a rotated Secret is picked up by a
// restart.
func (r *redisFlags) client() (redis.UniversalClient, error) {
	o, err := r.options()
	if err != nil {
		return nil, err
	}
	if r.passwordFile != "" {
		if o.Password, err = redisSecret("--redis-password-file", r.passwordFile); err != nil {
			return nil, err
		}
	}
	if r.sentinelPassFile != "" {
		if o.SentinelPassword, err = redisSecret("--redis-sentinel-password-file", r.sentinelPassFile); err != nil {
			return nil, err
		}
	}
	if o.TLSConfig != nil {
		if err := r.loadTLS(o.TLSConfig); err != nil {
			return nil, err
		}
	}
	if len(r.clusterAddrs) == 0 && r.sentinelMaster == "" {
		// A single node keeps everything its URL says (unix sockets, pool
		// and timeout parameters), which UniversalOptions cannot carry.
		so, err := redis.ParseURL(r.url)
		if err != nil {
			return nil, errRedisURL
		}
		so.Username, so.Password, so.TLSConfig = o.Username, o.Password, o.TLSConfig
		return redis.NewClient(so), nil
	}
	return redis.NewUniversalClient(o), nil
}

func (r *redisFlags) loadTLS(c *tls.Config) error {
	if r.tlsCA != "" {
		pem, err := os.ReadFile(r.tlsCA)
		if err != nil {
			return fmt.Errorf("--redis-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--redis-tls-ca: no PEM certificate in %s", r.tlsCA)
		}
		c.RootCAs = pool
	}
	if r.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(r.tlsCert, r.tlsKey)
		if err != nil {
			return fmt.Errorf("--redis-tls-cert, --redis-tls-key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// redisSecret reads a secret mounted as a file, without the trailing
// newline an editor or `kubectl create secret --from-file` leaves. The
// error names the file, never its content.
func redisSecret(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", flagName, path)
	}
	return s, nil
}
