//go:build unix

package kafkaserver

import "syscall"

func restrictUmask() { syscall.Umask(0o077) }
