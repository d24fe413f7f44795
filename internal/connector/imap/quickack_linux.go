package imap

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge what arrives at once instead of
// after the delayed-ACK timer (up to 40 ms). The kernel leaves quick-ack
// mode again by itself, so callers renew it around every read and write.
// A connection from Config.Dial that wraps a TCP connection reaches it
// through a NetConn method, as *tls.Conn offers.
func quickAck(c net.Conn) {
	for range 4 {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
