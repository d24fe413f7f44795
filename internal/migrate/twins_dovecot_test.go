package migrate_test

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/migrate"
	"github.com/mailferry/mailferry/internal/testenv"
)

// twin is one message stored twice on the source, the copies told apart
// only by their flags and dates.
var twin = []byte("From: Alice <alice@old.example>\r\nTo: bob@old.example\r\nSubject: twice\r\n" +
	"Message-ID: <twin@old.example>\r\nDate: Tue, 1 Mar 2022 09:00:00 +0000\r\n\r\nthe same bytes\r\n")

var (
	dateA = time.Date(2022, 3, 1, 9, 0, 5, 0, time.UTC)
	dateB = time.Date(2023, 7, 9, 18, 30, 0, 0, time.UTC)
)

// sameMessages compares two folders as multisets: identical messages
// make the order of a dump meaningless.
func sameMessages(t *testing.T, what string, want, got []served) {
	t.Helper()
	w, g := make([]string, len(want)), make([]string, len(got))
	for i, s := range want {
		w[i] = s.String()
	}
	for i, s := range got {
		g[i] = s.String()
	}
	sort.Strings(w)
	sort.Strings(g)
	if len(w) != len(g) {
		t.Errorf("%s: %d messages, want %d:\n got %v\nwant %v", what, len(g), len(w), g, w)
		return
	}
	for i := range w {
		if w[i] != g[i] {
			t.Errorf("%s: message %d:\n got %s\nwant %s", what, i, g[i], w[i])
		}
	}
}

// Two messages in one folder with the same bytes and Message-ID but other
// flags and dates are two messages. A destination that already holds the
// second one gets the first, with its own flags and date; it used to
// count the first as present (same identity) and copy the second again.
func TestIdenticalMessagesStayDistinct(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "quinn", pw)
	dst.AddUser(t, "quinn", pw)
	a := seedMsg{folder: "Twins", raw: twin, flags: []imap.Flag{imap.FlagSeen}, date: dateA}
	b := seedMsg{folder: "Twins", raw: twin, flags: []imap.Flag{imap.FlagFlagged, "$Important"}, date: dateB}
	seed(t, src, "quinn", []string{"Twins", "Other"}, []seedMsg{a, b,
		{folder: "Other", raw: []byte("Message-ID: <o@x>\r\n\r\nother\r\n"), date: dateA}})
	seed(t, dst, "quinn", []string{"Twins"}, []seedMsg{b})

	include, _ := migrate.ParseFilter("^Twins$")
	res, err := run(t, plainConfig(src, "quinn"), plainConfig(dst, "quinn"), migrate.Options{Rules: migrate.Rules{Include: []*regexp.Regexp{include}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Copied != 1 || res.Stats.Present != 1 {
		t.Errorf("copied %d, present %d; want 1 and 1", res.Stats.Copied, res.Stats.Present)
	}
	sameMessages(t, "Twins", dump(t, src, "quinn")["Twins"], dump(t, dst, "quinn")["Twins"])

	// A second pass finds both and writes nothing.
	res, err = run(t, plainConfig(src, "quinn"), plainConfig(dst, "quinn"), migrate.Options{Rules: migrate.Rules{Include: []*regexp.Regexp{include}}})
	if err != nil || res.Stats.Copied != 0 || res.Stats.Present != 2 {
		t.Fatalf("second pass: %v, copied %d, present %d", err, res.Stats.Copied, res.Stats.Present)
	}
	sameMessages(t, "Twins after a second pass", dump(t, src, "quinn")["Twins"], dump(t, dst, "quinn")["Twins"])
}

// loseAnswers stores nothing for the first APPEND of the message dated
// dropDate and loses the answer to the first APPEND of the one dated
// storeDate after storing it: the connection dropped in both cases, so
// both outcomes are unknown to the engine. The first answer is lost only
// once the second message is on the server, so that the engine, looking
// for the first, finds its twin.
type loseAnswers struct {
	connector.Destination
	dropDate, storeDate time.Time
	stored              chan struct{}
	once1, once2        sync.Once
}

type lost struct{ wait func() }

func (l lost) Wait() (connector.AppendResult, error) {
	l.wait()
	return connector.AppendResult{}, &connector.Error{Kind: connector.KindTransient, Uncertain: true, Op: "append",
		Err: errors.New("connection reset by peer (injected)")}
}

func (d *loseAnswers) Append(ctx context.Context, f connector.Folder, req connector.AppendRequest) (connector.PendingAppend, error) {
	var hit bool
	switch {
	case !req.Retry && req.InternalDate.Equal(d.dropDate):
		d.once1.Do(func() { hit = true })
		if hit {
			return lost{wait: func() { <-d.stored }}, nil
		}
	case !req.Retry && req.InternalDate.Equal(d.storeDate):
		d.once2.Do(func() { hit = true })
		if hit {
			pa, err := d.Destination.Append(ctx, f, req)
			if err != nil {
				return nil, err
			}
			if _, err := pa.Wait(); err != nil {
				return nil, err
			}
			close(d.stored)
			return lost{wait: func() {}}, nil
		}
	}
	return d.Destination.Append(ctx, f, req)
}

// When the answers to the APPENDs of two identical messages are lost, the
// engine must look on the destination for each one by its own date:
// finding the twin that did land must not pass for the one that did not
// (the next check would then resend the wrong copy).
func TestLostAnswerChecksTheRightCopy(t *testing.T) {
	t.Parallel()
	src := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	dst := testenv.StartDovecot(t, testenv.DovecotOptions{Layout: testenv.LayoutSlash})
	src.AddUser(t, "rita", pw)
	dst.AddUser(t, "rita", pw)
	// B first: its APPEND is the one whose answer is lost before A lands.
	seed(t, src, "rita", nil, []seedMsg{
		{folder: "INBOX", raw: twin, flags: []imap.Flag{imap.FlagFlagged}, date: dateB},
		{folder: "INBOX", raw: twin, flags: []imap.Flag{imap.FlagSeen}, date: dateA},
	})
	opts := migrate.Options{Streams: 1, PinStreams: true, FetchBatch: 2, PipelineDepth: 4, SettleDelay: 10 * time.Millisecond}
	res, err := runOn(context.Background(), t, plainConfig(src, "rita"), plainConfig(dst, "rita"), opts, func(d connector.Destination) connector.Destination {
		return &loseAnswers{Destination: d, dropDate: dateB, storeDate: dateA, stored: make(chan struct{})}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Uncertain != 2 || res.Stats.Copied != 2 || len(res.Failures) != 0 {
		t.Errorf("uncertain %d, copied %d, failures %v; want 2, 2, none", res.Stats.Uncertain, res.Stats.Copied, res.Failures)
	}
	sameMessages(t, "INBOX", dump(t, src, "rita")["INBOX"], dump(t, dst, "rita")["INBOX"])
}
