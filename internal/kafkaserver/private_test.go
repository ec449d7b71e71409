package kafkaserver_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/internal/kafkaserver"
)

// TestDataDirPrivate: the data dir holds endpoint secrets, so nothing in it
// may be readable by group or others, whether kfake created it or an older
// version left it behind.
func TestDataDirPrivate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old", "f"), []byte("whsec_x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := kafkaserver.Start(kafkaserver.WithDataDir(dir), kafkaserver.WithPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr()), kgo.DefaultProduceTopic("hookstream.endpoints"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, "hookstream.endpoints"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("ep_1"), Value: []byte(`{"secrets":["whsec_x"]}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	s.Close()

	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v, want no group or other permissions", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("found %d files in %s, want kfake's as well as the old one", files, dir)
	}
}
