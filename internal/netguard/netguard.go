// Package netguard decides which IP addresses webhooks may be sent to:
// public unicast only, never loopback, private, link-local, CGNAT, cloud
// metadata, multicast, documentation or other special-purpose ranges. The
// endpoint API checks a URL's host when it is saved; the deliverer must check
// again on the address it actually dials (Control), because DNS answers can
// change after the URL was accepted.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrDenied is wrapped by Control when the dialled address is not allowed.
var ErrDenied = errors.New("netguard: destination address not allowed")

// denied lists the special-purpose ranges (IANA IPv4/IPv6 special-purpose
// registries) that never host a public webhook receiver. Cloud metadata
// services live inside them: 169.254.169.254 (link-local), 100.100.100.200
// (CGNAT), fd00:ec2::254 (ULA).
var denied = prefixes(
	// IPv4
	"0.0.0.0/8",       // "this network", incl. unspecified
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // CGNAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, incl. broadcast
	// IPv6 (IPv4-mapped addresses are unmapped first; NAT64 and 6to4 are
	// judged by the IPv4 address they carry, before this list)
	"::/8",          // unspecified, loopback, IPv4-compatible, other reserved
	"100::/64",      // discard
	"2001::/23",     // IETF protocol assignments, incl. Teredo
	"2001:db8::/32", // documentation
	"3fff::/20",     // documentation
	"fc00::/7",      // unique local, incl. fd00:ec2::254
	"fe80::/10",     // link-local
	"fec0::/10",     // site-local (deprecated)
	"ff00::/8",      // multicast
)

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Allowed reports whether ip is a public unicast address a webhook may be
// sent to. An IPv6 address that embeds an IPv4 one (IPv4-mapped, NAT64,
// 6to4) is judged by the embedded address, so ::ffff:127.0.0.1 is refused.
func Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return Allowed(netip.AddrFrom4([4]byte(b[12:16])))
		case nat64Local.Contains(ip):
			return false
		case sixToFour.Contains(ip):
			return Allowed(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, p := range denied {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control function that refuses connections to
// addresses Allowed rejects. It runs after DNS resolution, on the address
// being dialled, so a name that later resolves to a private address is
// still refused:
//
//	d := &net.Dialer{Control: netguard.Control}
func Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrDenied, host)
	}
	if !Allowed(ip) {
		return fmt.Errorf("%w: %s", ErrDenied, ip)
	}
	return nil
}
