package netguard

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"93.184.215.14", true},
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:82b::200e", true},
		{"64:ff9b::808:808", true},    // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},     // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", true},      // IPv4-mapped public
		{"100.63.255.255", true},      // just below CGNAT
		{"100.128.0.0", true},         // just above CGNAT
		{"172.32.0.1", true},          // just above 172.16/12
		{"0.0.0.0", false},            // unspecified
		{"0.1.2.3", false},            // this network
		{"127.0.0.1", false},          // loopback
		{"127.255.255.254", false},    // loopback
		{"10.1.2.3", false},           // private
		{"172.16.0.1", false},         // private
		{"172.31.255.255", false},     // private
		{"192.168.1.1", false},        // private
		{"169.254.169.254", false},    // link-local, cloud metadata
		{"169.254.170.2", false},      // ECS task metadata
		{"100.64.0.1", false},         // CGNAT
		{"100.100.100.200", false},    // Alibaba metadata (CGNAT)
		{"192.0.0.192", false},        // IETF assignments
		{"198.18.0.1", false},         // benchmarking
		{"203.0.113.7", false},        // documentation
		{"224.0.0.1", false},          // multicast
		{"255.255.255.255", false},    // broadcast
		{"::", false},                 // unspecified
		{"::1", false},                // loopback
		{"::ffff:127.0.0.1", false},   // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},    // IPv4-mapped private
		{"::127.0.0.1", false},        // IPv4-compatible
		{"fe80::1", false},            // link-local
		{"fe80::1%eth0", false},       // link-local with zone
		{"fc00::1", false},            // ULA
		{"fd00:ec2::254", false},      // AWS IPv6 metadata
		{"ff02::1", false},            // multicast
		{"2001:db8::1", false},        // documentation
		{"2001::1", false},            // Teredo
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", false},       // local-use NAT64
		{"2002:7f00:1::1", false},     // 6to4 of 127.0.0.1
		{"2002:a00:1::1", false},      // 6to4 of 10.0.0.1
		{"fec0::1", false},            // site-local
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := Allowed(ip); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if Allowed(netip.Addr{}) {
		t.Error("Allowed(zero Addr) = true, want false")
	}
}

// TestControlRefusesLoopbackDial dials a real server on 127.0.0.1 through a
// dialer guarded by Control: the connection must be refused before it is made.
func TestControlRefusesLoopbackDial(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Control: Control}).DialContext}}
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET through a guarded dialer to 127.0.0.1 succeeded, want refusal")
	}
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("error = %v, want one wrapping ErrDenied", err)
	}
	if hit {
		t.Fatal("the loopback server received the request")
	}
	if err := Control("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Fatalf("Control(8.8.8.8:443) = %v, want nil", err)
	}
}
