// Package kafkaserver runs an embedded Kafka broker (franz-go's kfake) that
// real Kafka clients reach over TCP: the broker behind `hookstream kafka`,
// `hookstream dev` and the integration tests.
package kafkaserver

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

type cfg struct {
	addr       string
	dataDir    string
	partitions int
	syncWrites bool
}

// Option configures a Server.
type Option func(*cfg)

// WithAddr sets the listen address (default "127.0.0.1:0", a free port).
func WithAddr(addr string) Option { return func(c *cfg) { c.addr = addr } }

// WithDataDir persists records and committed offsets under dir so they
// survive a restart (default: memory only). The directory and its files
// are made private to the owner (0700/0600), and so is the process umask.
func WithDataDir(dir string) Option { return func(c *cfg) { c.dataDir = dir } }

// WithPartitions sets the partition count of topics created without one
// (default 6).
func WithPartitions(n int) Option { return func(c *cfg) { c.partitions = n } }

// WithSyncWrites fsyncs every produced batch before acknowledging it (default
// off, like Kafka's own default).
func WithSyncWrites() Option { return func(c *cfg) { c.syncWrites = true } }

// Server is one running embedded broker.
type Server struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts a single-broker cluster.
func Start(opts ...Option) (*Server, error) {
	c := cfg{addr: "127.0.0.1:0", partitions: 6}
	for _, o := range opts {
		o(&c)
	}
	host, portStr, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w", c.addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: bad port: %w", c.addr, err)
	}
	kopts := []kfake.Opt{
		kfake.Ports(port),
		kfake.DefaultNumPartitions(c.partitions),
		// Short sessions let tests and laptops see a killed member's
		// partitions reassigned in seconds rather than a minute.
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			// kfake always asks for 127.0.0.1:port; honour the configured host.
			return net.Listen(network, net.JoinHostPort(host, portStr))
		}),
	}
	if c.dataDir != "" {
		if err := privateDataDir(c.dataDir); err != nil {
			return nil, err
		}
		kopts = append(kopts, kfake.DataDir(c.dataDir))
	}
	if c.syncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	cl, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %s: %w", c.addr, err)
	}
	return &Server{cluster: cl, addr: cl.ListenAddrs()[0]}, nil
}

// Addr is the broker's address, usable as a seed broker.
func (s *Server) Addr() string { return s.addr }

// Cluster exposes kfake's controls (fault injection, group info) to tests.
func (s *Server) Cluster() *kfake.Cluster { return s.cluster }

// Close stops the broker, flushing persisted state.
func (s *Server) Close() { s.cluster.Close() }

// Run serves until ctx is cancelled, then closes the broker.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Close()
	return nil
}
