package kafkaserver

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// privateDataDir makes dir, which holds endpoint secrets (the endpoints
// topic), readable by its owner only: existing entries are tightened to
// 0700/0600, and the process umask is narrowed because kfake creates its
// directories 0755 and files 0644.
func privateDataDir(dir string) error {
	restrictUmask()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		} else if !d.Type().IsRegular() {
			return nil
		}
		return os.Chmod(path, mode)
	})
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}
