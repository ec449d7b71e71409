package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantErr string
	}{
		{name: "default", want: "def", wantDur: time.Second},
		{name: "env", env: map[string]string{"HOOKSTREAM_KAFKA_BROKERS": "envval"}, want: "envval", wantDur: time.Second},
		{name: "flag beats env", args: []string{"--kafka-brokers", "flagval"}, env: map[string]string{"HOOKSTREAM_KAFKA_BROKERS": "envval"}, want: "flagval", wantDur: time.Second},
		{name: "env duration", env: map[string]string{"HOOKSTREAM_SHUTDOWN_GRACE": "3s"}, want: "def", wantDur: 3 * time.Second},
		{name: "bad env names variable", env: map[string]string{"HOOKSTREAM_SHUTDOWN_GRACE": "soon"}, wantErr: "HOOKSTREAM_SHUTDOWN_GRACE"},
		{name: "bad flag", args: []string{"--shutdown-grace", "soon"}, wantErr: "shutdown-grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			s := fs.String("kafka-brokers", "def", "")
			d := fs.Duration("shutdown-grace", time.Second, "")
			err := Parse(fs, tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *s != tt.want || *d != tt.wantDur {
				t.Fatalf("got %q %v, want %q %v", *s, *d, tt.want, tt.wantDur)
			}
		})
	}
}

func TestHelpListsEnv(t *testing.T) {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.String("redis-url", "redis://x", "Redis URL")
	err := Parse(fs, []string{"--help"}, func(string) (string, bool) { return "", false })
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "HOOKSTREAM_REDIS_URL") {
		t.Fatalf("help does not name the variable:\n%s", out.String())
	}
}

func TestStringList(t *testing.T) {
	var l StringList
	if err := l.Set(" a, ,b,c "); err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "a,b,c" {
		t.Fatalf("got %q", got)
	}
}
