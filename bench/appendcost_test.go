//go:build linux

package bench

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testenv"
)

const appendCostPassword = "bench-Secret-1"

// appendCostConn logs in as u over a raw connection.
func appendCostConn(t *testing.T, addr string) (net.Conn, *bufio.Reader, *bufio.Writer) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r, w := bufio.NewReader(c), bufio.NewWriterSize(c, 1<<20)
	r.ReadString('\n')
	fmt.Fprintf(w, "a LOGIN u %s\r\n", appendCostPassword)
	w.Flush()
	for {
		l, _ := r.ReadString('\n')
		if strings.HasPrefix(l, "a ") {
			if !strings.HasPrefix(l, "a OK") {
				t.Fatal(l)
			}
			break
		}
	}
	return c, r, w
}

// appendCostBatches appends n messages to folder in commands of batch
// messages each, waiting for each command's answer.
func appendCostBatches(t *testing.T, r *bufio.Reader, w *bufio.Writer, folder string, n, batch int, msg func(i int) string, seq *int) {
	for i := 0; i < n; {
		*seq++
		tag := "x" + strconv.Itoa(*seq)
		fmt.Fprintf(w, "%s APPEND %s", tag, folder)
		for k := 0; k < batch && i < n; k++ {
			m := msg(i)
			fmt.Fprintf(w, " (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {%d+}\r\n%s", len(m), m)
			i++
		}
		w.WriteString("\r\n")
		w.Flush()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatal(l)
				}
				break
			}
		}
	}
}

// TestAppendCost measures what one APPEND command costs the destination
// Dovecot, by the number of messages it carries and the size of the
// folder it goes into (issue 14): 4 KB messages are appended into a
// folder first filled to 0, 20,000 and 50,000 messages, in commands of
// 1 to 256 messages (MULTIAPPEND, RFC 3502, with LITERAL+), and the
// server's CPU (all its processes) is divided by the messages stored.
// The batch limits in internal/connector/imap/wire.go come from it.
//
//	MAILFERRY_BENCH_TESTS=TestAppendCost scripts/bench
func TestAppendCost(t *testing.T) {
	if os.Getenv("MAILFERRY_BENCH") != "1" {
		t.Skip("set MAILFERRY_BENCH=1 (scripts/bench)")
	}
	fmt.Printf("# What an APPEND costs Dovecot (TestAppendCost)\nmachine: %s, load %s; dovecot %s\n",
		machineInfo(), loadAvg(), toolVersion(dovecotPath(), "--version"))
	body := strings.Repeat("hello world this is a line of text for the benchmark.\r\n", 80)
	msg := func(i int) string {
		return fmt.Sprintf("From: a@b\r\nTo: c@d\r\nSubject: m %d\r\nMessage-ID: <%d.%d@append-cost>\r\n\r\n%s", i, i, time.Now().UnixNano(), body)
	}
	for _, prefill := range []int{0, 20000, 50000} {
		d := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash, ParentDir: "/dev/shm"})
		d.AddUser(t, "u", appendCostPassword)
		_, r, w := appendCostConn(t, d.Addr())
		seq := 0
		fmt.Fprintf(w, "c CREATE F\r\n")
		w.Flush()
		r.ReadString('\n')
		pid := masterPID(d.Dir)
		c0 := groupCPU(pid)
		appendCostBatches(t, r, w, "F", prefill, 512, msg, &seq)
		fmt.Printf("folder filled with %d messages (%.1f s of Dovecot CPU)\n", prefill, (groupCPU(pid) - c0).Seconds())
		for _, b := range []int{1, 8, 24, 64, 256} {
			n := 3000
			if b == 1 {
				n = 1000
			}
			c0 := groupCPU(pid)
			appendCostBatches(t, r, w, "F", n, b, msg, &seq)
			cpu := groupCPU(pid) - c0
			fmt.Printf("folder holds %6d, %4d per APPEND: %7.0f µs of Dovecot CPU per message\n", prefill, b, float64(cpu.Microseconds())/float64(n))
		}
	}
}
