package ews

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/testenv/ewsserver"
)

// The large-message test measures this process's heap, so the EWS server
// (which holds its mailboxes in memory) runs in a child process: this
// test binary started again with helperEnv set.
const helperEnv = "MAILFERRY_EWS_HELPER_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelperServer())
	}
	os.Exit(m.Run())
}

// bigMessage is a message of about size bytes, the same in both
// processes.
func bigMessage(size int) []byte {
	var b strings.Builder
	b.Grow(size + 200)
	b.WriteString("From: big@example.org\r\nTo: alice@example.com\r\nSubject: big attachment\r\nMessage-ID: <big@example.org>\r\n" +
		"Date: Mon, 2 Jan 2006 15:04:05 +0000\r\nContent-Type: application/octet-stream\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%08d ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n", i)
	}
	return []byte(b.String())
}

// runHelperServer serves alice's mailbox with one large message until
// its standard input closes. It prints the server's address, its
// certificate and the message's size and digest.
func runHelperServer() int {
	size, _ := strconv.Atoi(os.Getenv(helperEnv))
	s := ewsserver.New(&ewsserver.Options{})
	if err := s.AddUser(alice, ewsserver.UserOptions{Password: pw}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	raw := bigMessage(size)
	mb := s.Mailbox(alice)
	if _, err := mb.AddItem(mb.DistinguishedFolderID("inbox"), ewsserver.SeedItem{MIME: raw}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := tls.Dial("tcp", s.Host(), s.TLSConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cert := conn.ConnectionState().PeerCertificates[0].Raw
	conn.Close()
	sum := sha256.Sum256(raw)
	fmt.Printf("%s %s %d %s\n", s.Host(), hex.EncodeToString(cert), len(raw), hex.EncodeToString(sum[:]))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// A 30 MB message (12 MB under the race detector) is streamed: its base64 is decoded as it arrives and
// spooled to a file, so this process's heap grows by a small fraction of
// its size, and the bytes handed on are the message.
func TestLargeMessageBoundedHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("large message")
	}
	size := 30 << 20
	if raceEnabled {
		size = 12 << 20
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(size))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper server: %v", err)
	}
	var host, certHex, sumHex string
	var n int64
	if _, err := fmt.Sscan(line, &host, &certHex, &n, &sumHex); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	der, _ := hex.DecodeString(certHex)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	e, err := Parse("ews://" + host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(context.Background(), e, connector.OpenOptions{
		Credentials: connector.Credentials{Username: alice, Password: pw}, RootCAs: pool, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := folderByPath(t, c, "INBOX")
	ms, _ := listAll(t, c, in, connector.ListOptions{})
	if len(ms) != 1 || ms[0].Size != n {
		t.Fatalf("listed %+v", ms)
	}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	h := sha256.New()
	var got int64
	buf := make([]byte, 32<<10)
	err = c.Fetch(context.Background(), in, ms, func(b connector.Body, err error) error {
		if err != nil {
			return err
		}
		got = b.Size
		_, err = io.CopyBuffer(h, b.Reader, buf)
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got != n || hex.EncodeToString(h.Sum(nil)) != sumHex {
		t.Fatalf("fetched %d bytes (want %d), digest equal: %v", got, n, hex.EncodeToString(h.Sum(nil)) == sumHex)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %.1f MB while fetching a %d MB message", float64(growth)/(1<<20), n>>20)
	if growth > int64(size)/3 {
		t.Errorf("heap grew by %d MB: the message was held in memory", growth>>20)
	}
}
