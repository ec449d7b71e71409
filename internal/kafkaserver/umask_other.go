//go:build !unix

package kafkaserver

func restrictUmask() {}
