package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	imapconn "github.com/mailferry/mailferry/internal/connector/imap"
	"github.com/mailferry/mailferry/internal/mail"
	"github.com/mailferry/mailferry/internal/testenv"
)

// The data set: a deterministic, realistic-looking mailbox of about
// 6,000 messages and 100 MB over 20 folders up to three levels deep.
// Everything derives from one fixed seed, so every run of the benchmark,
// on any machine, copies the same bytes.

// baseMessages is the number of ordinary messages at scale 1; the three
// big ones (5, 20 and 40 MB) come on top, whatever the scale.
const baseMessages = 6000

type folderSpec struct {
	name   string // "/"-separated, as on the benchmark's servers
	weight float64
}

// benchFolders are the 20 folders. No name contains '.', which mbsync
// would refuse on a server whose separator is '.'; none contains '/'
// inside a level either.
var benchFolders = []folderSpec{
	{"INBOX", 28},
	{"Sent", 12},
	{"Drafts", 1},
	{"Trash", 4},
	{"Junk", 3},
	{"Archive", 6},
	{"Archive/2019", 5},
	{"Archive/2019/Q1", 3},
	{"Archive/2019/Q2", 3},
	{"Archive/2020", 5},
	{"Archive/2021", 5},
	{"Projects", 2},
	{"Projects/Alpha", 3},
	{"Projects/Alpha/Specs", 2},
	{"Projects/Beta", 3},
	{"Lists", 1},
	{"Lists/golang-nuts", 6},
	{"Lists/dovecot", 4},
	{"Receipts", 2},
	{"Family", 2},
}

type msgKind int

const (
	kindPlain       msgKind = iota // text/plain
	kindAlternative                // multipart/alternative, text and HTML
	kindAttachment                 // multipart/mixed with a base64 attachment of 100 KB–2 MB
	kindBig                        // multipart/mixed, one of the three 5/20/40 MB messages
)

type plannedMsg struct {
	folder   int
	date     time.Time // INTERNALDATE; the Date header is a little earlier
	flags    []string  // system flags and keywords
	kind     msgKind
	attBytes int // encoded attachment size (kindAttachment, kindBig)
	noMsgID  bool
	seed     uint64
}

type dataset struct {
	folders []folderSpec
	msgs    [][]plannedMsg // per folder, in INTERNALDATE order (arrival order)
}

func (ds *dataset) count() int {
	n := 0
	for _, f := range ds.msgs {
		n += len(f)
	}
	return n
}

// planDataset draws the plan of every message from rand.NewPCG(1, 2).
// Bodies are rendered later from each message's own seed.
func planDataset(scale float64) *dataset {
	r := rand.New(rand.NewPCG(1, 2))
	ds := &dataset{folders: benchFolders, msgs: make([][]plannedMsg, len(benchFolders))}
	var total float64
	for _, f := range benchFolders {
		total += f.weight
	}
	pickFolder := func() int {
		x := r.Float64() * total
		for i, f := range benchFolders {
			if x < f.weight {
				return i
			}
			x -= f.weight
		}
		return 0
	}
	// Fifteen years of mail.
	from := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := to.Sub(from)

	n := int(math.Round(baseMessages * scale))
	n = max(n, len(benchFolders))
	for range n {
		m := plannedMsg{folder: pickFolder(), seed: r.Uint64()}
		m.date = from.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Second)
		switch u := r.Float64(); {
		case u < 0.02:
			m.kind = kindAttachment
			// 100 KB to 2 MB, Pareto-distributed (alpha 2.5): mostly
			// small documents and photos, a few large ones.
			m.attBytes = int(min(100_000*math.Pow(1-r.Float64(), -1/2.5), 2_000_000))
		case u < 0.20:
			m.kind = kindAlternative
		default:
			m.kind = kindPlain
		}
		m.noMsgID = r.Float64() < 0.03
		m.flags = planFlags(r, benchFolders[m.folder].name)
		ds.msgs[m.folder] = append(ds.msgs[m.folder], m)
	}
	// The three big messages, whatever the scale: the 40 MB one is what
	// the peak-RSS target is about.
	for _, big := range []struct {
		folder string
		mb     int
	}{{"INBOX", 5}, {"Archive/2020", 20}, {"Projects/Alpha/Specs", 40}} {
		fi := slices.IndexFunc(benchFolders, func(f folderSpec) bool { return f.name == big.folder })
		m := plannedMsg{folder: fi, seed: r.Uint64(), kind: kindBig, attBytes: big.mb * 1_000_000}
		m.date = from.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Second)
		m.flags = []string{mail.FlagSeen}
		ds.msgs[fi] = append(ds.msgs[fi], m)
	}
	for _, f := range ds.msgs {
		slices.SortStableFunc(f, func(a, b plannedMsg) int { return a.date.Compare(b.date) })
	}
	return ds
}

func planFlags(r *rand.Rand, folder string) []string {
	var fl []string
	p := func(prob float64) bool { return r.Float64() < prob }
	switch {
	case folder == "Drafts":
		fl = append(fl, mail.FlagDraft)
		if p(0.5) {
			fl = append(fl, mail.FlagSeen)
		}
	case folder == "Sent":
		if p(0.98) {
			fl = append(fl, mail.FlagSeen)
		}
	case folder == "Junk":
		if p(0.3) {
			fl = append(fl, mail.FlagSeen)
		}
	default:
		if p(0.85) {
			fl = append(fl, mail.FlagSeen)
			if p(0.12) {
				fl = append(fl, mail.FlagAnswered)
			}
		}
		if p(0.05) {
			fl = append(fl, mail.FlagFlagged)
		}
	}
	if p(0.03) {
		fl = append(fl, "$Label1")
	}
	work := 0.02
	if strings.HasPrefix(folder, "Projects") {
		work = 0.25
	}
	if p(work) {
		fl = append(fl, "Work")
	}
	return fl
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë", "José", "Björn"}
	lastNames  = []string{"Smith", "Jones", "Miller", "Nguyen", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Okafor", "Larsen", "Silva", "Cohen", "Novak"}
	domains    = []string{"example.com", "example.net", "mail.example.org", "corp.example", "uni.example.edu", "shop.example", "isp.example.co.uk"}
	words      = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will more can about out up them some could what into than other only its time new two may these then do first any my now such like our over man me even most made also after did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three states himself few house use during without again place around however home small found mrs thought went say part once general high upon school every don does got united left number course war until always away something fact though water less public put think almost hand enough far took head yet government system better set told nothing night end why called didn eyes find going look asked later knew point next program city business give group toward young days let room president side social given present several order national possible rather second face per among form important often things looked early white case john become large big need four within felt along children saw best church ever least power development light thing seemed family interest want members mind country area others done turned although open god service certain kind problem began different door thus help sense means whole matter perhaps itself york times law human line above name example action company hands local show whether five history gave today either act feet across taken past quite anything seen having death experience body word half really week field am car words already themselves information tell college shall money period held keep sure probably free seems political real behind cannot miss question air office making brought whose special major heard federal became study ago moment knowledge available job private past meeting budget release deploy review schedule invoice contract draft proposal feedback update status report quarterly milestone`)
	zones      = []*time.Location{
		time.FixedZone("", -8*3600), time.FixedZone("", -5*3600), time.UTC, time.FixedZone("", 3600),
		time.FixedZone("", 2*3600), time.FixedZone("", 5*3600+1800), time.FixedZone("", 9*3600),
	}
	utf8Subjects = []string{
		"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=",
		"=?UTF-8?B?w4dhIHZhIGJpZW4gPw==?=",
		"=?ISO-8859-1?Q?R=E9union_de_l'=E9quipe?=",
	}
)

// render returns the message's bytes (CRLF line ends throughout).
func (m plannedMsg) render(folder string) []byte {
	r := rand.New(rand.NewPCG(m.seed, 0x6d61696c))
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	person := func() (string, string) {
		f, l := pick(firstNames), pick(lastNames)
		addr := strings.ToLower(asciiOnly(f)+"."+asciiOnly(l)) + "@" + pick(domains)
		return f + " " + l, addr
	}
	me, meAddr := "Alice Example", "alice@example.org"
	var b bytes.Buffer
	h := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }

	sent := m.date.Add(-time.Duration(5+r.IntN(600)) * time.Second).In(zones[r.IntN(len(zones))])
	fromName, fromAddr := person()
	toName, toAddr := me, meAddr
	if folder == "Sent" || folder == "Drafts" {
		fromName, fromAddr, toName, toAddr = me, meAddr, fromName, fromAddr
	}
	isList := strings.HasPrefix(folder, "Lists/")
	if folder != "Drafts" && folder != "Sent" {
		h("Return-Path: <%s>", fromAddr)
		for hop := range 1 + r.IntN(3) {
			h("Received: from mx%d.%s (mx%d.%s [198.51.100.%d])\r\n\tby mail.example.org (Postfix) with ESMTPS id %X\r\n\tfor <%s>; %s",
				hop+1, pick(domains), hop+1, pick(domains), 1+r.IntN(254), r.Uint32(), toAddr, sent.Add(time.Duration(hop)*time.Second).Format(time.RFC1123Z))
		}
	}
	h("Date: %s", sent.Format(time.RFC1123Z))
	h("From: %s <%s>", quoteName(fromName), fromAddr)
	if isList {
		list := strings.TrimPrefix(folder, "Lists/")
		h("To: %s@lists.example.org", list)
		h("List-Id: <%s.lists.example.org>", list)
		h("List-Unsubscribe: <mailto:%s+unsubscribe@lists.example.org>", list)
	} else {
		h("To: %s <%s>", quoteName(toName), toAddr)
	}
	if r.Float64() < 0.25 {
		cn, ca := person()
		h("Cc: %s <%s>", quoteName(cn), ca)
	}
	subject := sentence(r, 3+r.IntN(7), false)
	switch u := r.Float64(); {
	case u < 0.05:
		subject = pick(utf8Subjects)
	case u < 0.25:
		subject = "Re: " + subject
	case u < 0.30:
		subject = "Fwd: " + subject
	}
	h("Subject: %s", subject)
	domain := pick(domains)
	if !m.noMsgID {
		h("Message-ID: <%016x.%d@%s>", m.seed, m.date.Unix(), domain)
	}
	if strings.HasPrefix(subject, "Re: ") {
		ref := fmt.Sprintf("<%016x@%s>", r.Uint64(), domain)
		h("In-Reply-To: %s", ref)
		h("References: %s", ref)
	}
	if r.Float64() < 0.3 {
		h("X-Mailer: %s", pick([]string{"Thunderbird 115.3.1", "Apple Mail (2.3731)", "Microsoft Outlook 16.0", "Roundcube Webmail/1.6.2", "mutt 2.2.9"}))
	}
	h("MIME-Version: 1.0")

	text := bodyText(r)
	switch m.kind {
	case kindPlain:
		writeTextHeaders(&b, text)
		b.WriteString("\r\n")
		b.WriteString(text)
	case kindAlternative:
		bnd := fmt.Sprintf("=_alt_%016x", r.Uint64())
		h("Content-Type: multipart/alternative; boundary=%q", bnd)
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
		fmt.Fprintf(&b, "\r\n--%s\r\n", bnd)
		writeTextHeaders(&b, text)
		b.WriteString("\r\n" + text)
		fmt.Fprintf(&b, "\r\n--%s\r\n", bnd)
		b.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(htmlOf(text))
		fmt.Fprintf(&b, "\r\n--%s--\r\n", bnd)
	case kindAttachment, kindBig:
		bnd := fmt.Sprintf("=_mixed_%016x", r.Uint64())
		h("Content-Type: multipart/mixed; boundary=%q", bnd)
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
		fmt.Fprintf(&b, "\r\n--%s\r\n", bnd)
		writeTextHeaders(&b, text)
		b.WriteString("\r\n" + text)
		fmt.Fprintf(&b, "\r\n--%s\r\n", bnd)
		ctype, ext := pickAttachmentType(r)
		name := fmt.Sprintf("%s-%d.%s", strings.ReplaceAll(sentence(r, 2, false), " ", "-"), r.IntN(1000), ext)
		fmt.Fprintf(&b, "Content-Type: %s; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype, name, name)
		writeBase64(&b, r, m.attBytes)
		fmt.Fprintf(&b, "\r\n--%s--\r\n", bnd)
	}
	return b.Bytes()
}

func writeTextHeaders(b *bytes.Buffer, text string) {
	enc := "7bit"
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			enc = "8bit"
			break
		}
	}
	fmt.Fprintf(b, "Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: %s\r\n", enc)
}

func pickAttachmentType(r *rand.Rand) (ctype, ext string) {
	switch r.IntN(4) {
	case 0:
		return "application/pdf", "pdf"
	case 1:
		return "image/jpeg", "jpg"
	case 2:
		return "application/zip", "zip"
	}
	return "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"
}

// writeBase64 writes about n bytes of base64 (76 characters a line) of
// incompressible random data, like a JPEG or a ZIP.
func writeBase64(b *bytes.Buffer, r *rand.Rand, n int) {
	const rawPerLine = 57 // 76 base64 characters
	lines := max(1, n/78)
	raw := make([]byte, rawPerLine)
	enc := make([]byte, 76)
	b.Grow(lines * 78)
	for range lines {
		for i := 0; i < rawPerLine; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < rawPerLine; j++ {
				raw[i+j] = byte(v >> (8 * j))
			}
		}
		base64.StdEncoding.Encode(enc, raw)
		b.Write(enc)
		b.WriteString("\r\n")
	}
}

// bodyText is a few paragraphs whose total length is log-normal around
// 1.5 KB; a tenth carry a UTF-8 greeting.
func bodyText(r *rand.Rand) string {
	target := int(math.Exp(math.Log(1500) + 0.8*r.NormFloat64()))
	target = min(max(target, 120), 60_000)
	var b strings.Builder
	b.WriteString(pick1(r, []string{"Hi,", "Hello,", "Dear team,", "Hi all,", "Good morning,"}) + "\r\n\r\n")
	for b.Len() < target {
		line := 0
		for range 3 + r.IntN(6) {
			s := sentence(r, 6+r.IntN(14), true)
			for _, w := range strings.Fields(s) {
				if line+len(w)+1 > 72 {
					b.WriteString("\r\n")
					line = 0
				} else if line > 0 {
					b.WriteByte(' ')
					line++
				}
				b.WriteString(w)
				line += len(w)
			}
		}
		b.WriteString("\r\n\r\n")
	}
	if r.Float64() < 0.1 {
		b.WriteString(pick1(r, []string{"Viele Grüße", "Ça marche, à bientôt", "Saludos cordiales, señor"}) + "\r\n")
	} else {
		b.WriteString(pick1(r, []string{"Thanks,", "Best regards,", "Cheers,", "--"}) + "\r\n")
	}
	b.WriteString(pick1(r, firstNames) + "\r\n")
	return b.String()
}

func htmlOf(text string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><style>body{font-family:Arial,sans-serif;font-size:14px}</style></head>\r\n<body>\r\n")
	for _, para := range strings.Split(strings.TrimSpace(text), "\r\n\r\n") {
		b.WriteString("<p style=\"margin:0 0 1em 0\">")
		b.WriteString(strings.ReplaceAll(para, "\r\n", "<br>\r\n"))
		b.WriteString("</p>\r\n")
	}
	b.WriteString("</body></html>\r\n")
	return b.String()
}

func sentence(r *rand.Rand, n int, punctuate bool) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	ws[0] = strings.ToUpper(ws[0][:1]) + ws[0][1:]
	s := strings.Join(ws, " ")
	if punctuate {
		s += pick1(r, []string{".", ".", ".", "?", "!"})
	}
	return s
}

func pick1(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

func asciiOnly(s string) string {
	return strings.Map(func(c rune) rune {
		switch c {
		case 'ö':
			return 'o'
		case 'ü':
			return 'u'
		case 'é':
			return 'e'
		case 'ë':
			return 'e'
		}
		if c > 0x7f {
			return -1
		}
		return c
	}, s)
}

func quoteName(s string) string {
	for _, c := range s {
		if c > 0x7f {
			return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return `"` + s + `"`
}

// seedSummary describes what was seeded.
type seedSummary struct {
	messages, folders          int
	bytes, median, largest     int64
	plain, alternative, attach int
	big, noMsgID               int
	seen, answered, flagged    int
	draft, label1, work        int
	oldest, newest             time.Time
	elapsed                    time.Duration
}

func (s seedSummary) String() string {
	return fmt.Sprintf("%d messages, %.1f MB (%d bytes), median %.1f KB, largest %.1f MB, %d folders up to 3 levels deep\n"+
		"  kinds: %d text/plain, %d multipart/alternative, %d with a 100 KB-2 MB attachment, %d big (5, 20, 40 MB); %d without Message-ID\n"+
		"  flags: \\Seen %d, \\Answered %d, \\Flagged %d, \\Draft %d; keywords: $Label1 %d, Work %d\n"+
		"  INTERNALDATE %s to %s; seeded in %v",
		s.messages, float64(s.bytes)/1e6, s.bytes, float64(s.median)/1e3, float64(s.largest)/1e6, s.folders,
		s.plain, s.alternative, s.attach, s.big, s.noMsgID,
		s.seen, s.answered, s.flagged, s.draft, s.label1, s.work,
		s.oldest.Format("2006-01-02"), s.newest.Format("2006-01-02"), s.elapsed.Round(100*time.Millisecond))
}

func imapConfig(addr string, port int, user, password string) imapconn.Config {
	return imapconn.Config{Host: addr, Port: port, Security: imapconn.SecurityNone, AllowPlaintext: true,
		Username: user, Password: password, MaxConnections: 4}
}

// seedSource appends the data set to user's mailbox with the connector's
// pipelined MULTIAPPEND, one folder after the other.
func seedSource(t *testing.T, d *testenv.Dovecot, user, password string, ds *dataset) seedSummary {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	c, err := imapconn.Open(ctx, imapConfig(d.Host, d.Port, user, password))
	if err != nil {
		t.Fatalf("seed: open: %v", err)
	}
	defer c.Close()
	var sum seedSummary
	var sizes []int64
	for fi, f := range ds.folders {
		fo, err := c.CreateFolder(ctx, mail.Path(strings.Split(f.name, "/")), mail.RoleNone)
		if err != nil {
			t.Fatalf("seed: create %s: %v", f.name, err)
		}
		var pending []connector.PendingAppend
		for _, m := range ds.msgs[fi] {
			raw := m.render(f.name)
			pa, err := c.Append(ctx, fo, connector.AppendRequest{Flags: m.flags, InternalDate: m.date,
				Size: int64(len(raw)), Body: bytes.NewReader(raw)})
			if err != nil {
				t.Fatalf("seed: append to %s: %v", f.name, err)
			}
			pending = append(pending, pa)
			sum.account(m, int64(len(raw)))
			sizes = append(sizes, int64(len(raw)))
		}
		for _, pa := range pending {
			if _, err := pa.Wait(); err != nil {
				t.Fatalf("seed: append to %s: %v", f.name, err)
			}
		}
	}
	slices.Sort(sizes)
	sum.folders = len(ds.folders)
	if len(sizes) > 0 {
		sum.median = sizes[len(sizes)/2]
		sum.largest = sizes[len(sizes)-1]
	}
	sum.elapsed = time.Since(start)
	return sum
}

func (s *seedSummary) account(m plannedMsg, size int64) {
	s.messages++
	s.bytes += size
	switch m.kind {
	case kindPlain:
		s.plain++
	case kindAlternative:
		s.alternative++
	case kindAttachment:
		s.attach++
	case kindBig:
		s.big++
	}
	if m.noMsgID {
		s.noMsgID++
	}
	for _, f := range m.flags {
		switch f {
		case mail.FlagSeen:
			s.seen++
		case mail.FlagAnswered:
			s.answered++
		case mail.FlagFlagged:
			s.flagged++
		case mail.FlagDraft:
			s.draft++
		case "$Label1":
			s.label1++
		case "Work":
			s.work++
		}
	}
	if s.oldest.IsZero() || m.date.Before(s.oldest) {
		s.oldest = m.date
	}
	if m.date.After(s.newest) {
		s.newest = m.date
	}
}
