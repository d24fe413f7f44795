//go:build !linux

package imap

import "net"

// quickAck is a Linux socket option; elsewhere delayed ACKs stay.
func quickAck(net.Conn) {}
