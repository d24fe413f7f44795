package imap

import (
	"io"
	"net"
	"testing"
	"time"
)

// LatencyProxy forwards loopback connections to upstream with rtt/2 of
// delay each way. Unlike toxiproxy it can acknowledge like the client it
// stands for (quickACK: as Conn does for servers without LITERAL+):
// the server's Nagle waits for the ACKs of whoever holds the socket to
// it, which is the proxy, so a benchmark of ACK timing through a proxy
// that ACKs differently from the client measures the proxy.
func LatencyProxy(tb testing.TB, upstream string, rtt time.Duration, quick bool) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			go delayCopy(up, down, rtt/2, quick)
			go delayCopy(down, up, rtt/2, quick)
		}
	}()
	return l.Addr().String()
}

// delayCopy copies from src to dst, each chunk delayed by d, in order.
func delayCopy(dst, src net.Conn, d time.Duration, quick bool) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		defer dst.Close()
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				return
			}
			if quick {
				quickAck(dst)
			}
		}
	}()
	defer close(q)
	for {
		if quick {
			quickAck(src)
		}
		b := make([]byte, 32<<10)
		n, err := src.Read(b)
		if n > 0 {
			q <- chunk{time.Now().Add(d), b[:n]}
		}
		if err != nil {
			if err != io.EOF {
				_ = src.Close()
			}
			return
		}
	}
}
