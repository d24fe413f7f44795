package autoconfig

import (
	"reflect"
	"testing"
)

func targets(rs []srvRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Target)
	}
	return out
}

// RFC 2782: lower priority first whatever the weights.
func TestOrderSRVPriorityFirst(t *testing.T) {
	recs := []srvRecord{
		{Target: "c", Priority: 20, Weight: 100},
		{Target: "a", Priority: 0, Weight: 0},
		{Target: "b", Priority: 10, Weight: 5},
	}
	got := targets(orderSRV(recs, func(n int) int { return n - 1 }))
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// RFC 2782's weighted selection with the random number fixed: weight-0
// records come first in the running sums, so a pick of 0 selects one,
// and a pick past them selects by running sum.
func TestOrderSRVWeightedSelection(t *testing.T) {
	recs := []srvRecord{
		{Target: "w10", Priority: 1, Weight: 10},
		{Target: "w0", Priority: 1, Weight: 0},
		{Target: "w30", Priority: 1, Weight: 30},
	}
	// Running sums in list order (w0 moved first): w0=0, w10=10, w30=40.
	for _, tc := range []struct {
		picks []int // successive random numbers, each in [0, sum]
		want  []string
	}{
		{[]int{0, 0, 0}, []string{"w0", "w10", "w30"}},
		{[]int{40, 10, 0}, []string{"w30", "w10", "w0"}},
		{[]int{11, 1, 0}, []string{"w30", "w10", "w0"}},
		{[]int{5, 0, 0}, []string{"w10", "w0", "w30"}},
	} {
		i := 0
		pick := func(n int) int {
			p := tc.picks[i]
			i++
			if p >= n {
				t.Fatalf("pick %d out of range [0,%d)", p, n)
			}
			return p
		}
		if got := targets(orderSRV(recs, pick)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("picks %v: got %v, want %v", tc.picks, got, tc.want)
		}
	}
}

// Over many random orderings the heavier record comes first more often,
// in the proportion RFC 2782's algorithm gives: with weights 1 and 3 the
// running sums are 1 and 4 and the random number is drawn from 0..4, so
// 0 and 1 select the light record, 2, 3 and 4 the heavy one: 3 in 5.
func TestOrderSRVWeightsAreProportional(t *testing.T) {
	recs := []srvRecord{{Target: "light", Priority: 0, Weight: 1}, {Target: "heavy", Priority: 0, Weight: 3}}
	seed := uint64(1)
	pick := func(n int) int { // a small deterministic LCG
		seed = seed*6364136223846793005 + 1442695040888963407
		return int((seed >> 33) % uint64(n))
	}
	heavy := 0
	const runs = 4000
	for range runs {
		if orderSRV(recs, pick)[0].Target == "heavy" {
			heavy++
		}
	}
	if heavy < 2200 || heavy > 2600 {
		t.Errorf("heavy first %d of %d times, want about 2400 (3 in 5)", heavy, runs)
	}
}

func TestMergeKeepsBestConfidenceAndAllSources(t *testing.T) {
	in := []Candidate{
		{Protocol: ProtocolIMAP, Host: "IMAP.example.com", Port: 993, Security: SecurityTLS, Username: "alice@example.com", UsernameForm: UsernameGuess,
			Confidence: ConfidenceMedium, Sources: []Source{{Method: MethodMX, Where: "mx.example.com"}}},
		{Protocol: ProtocolIMAP, Host: "imap.example.com", Port: 993, Security: SecurityTLS, Username: "alice", UsernameForm: UsernameLocalPart,
			Confidence: ConfidenceHigh, Sources: []Source{{Method: MethodAutoconfig, Where: "https://autoconfig.example.com/x"}}},
		{Protocol: ProtocolIMAP, Host: "imap.example.com", Port: 143, Security: SecuritySTARTTLS, Confidence: ConfidenceHigh,
			Sources: []Source{{Method: MethodSRV, Where: "_imap._tcp.example.com"}}},
	}
	got := merge(in)
	if len(got) != 2 {
		t.Fatalf("got %d candidates, want 2", len(got))
	}
	m := got[0]
	if m.Confidence != ConfidenceHigh || m.Username != "alice" || m.UsernameForm != UsernameLocalPart {
		t.Errorf("merged = %+v", m)
	}
	if len(m.Sources) != 2 || m.Sources[0].Method != MethodAutoconfig {
		t.Errorf("sources = %+v, want autoconfig first then mx", m.Sources)
	}
}

func TestOrderBestFirst(t *testing.T) {
	c := func(p Protocol, s Security, conf Confidence, m Method, host string) Candidate {
		return Candidate{Protocol: p, Host: host, Security: s, Confidence: conf, Sources: []Source{{Method: m}}}
	}
	cs := []Candidate{
		c(ProtocolPOP3, SecurityTLS, ConfidenceHigh, MethodSRV, "pop3s"),
		c(ProtocolIMAP, SecurityNone, ConfidenceHigh, MethodAutoconfig, "imap-plain"),
		c(ProtocolIMAP, SecuritySTARTTLS, ConfidenceHigh, MethodSRV, "imap-starttls"),
		c(ProtocolIMAP, SecurityTLS, ConfidenceMedium, MethodMX, "imaps-mx"),
		c(ProtocolIMAP, SecurityTLS, ConfidenceHigh, MethodSRV, "imaps-srv"),
		c(ProtocolIMAP, SecurityTLS, ConfidenceHigh, MethodAutoconfig, "imaps-autoconfig"),
		c(ProtocolEWS, SecurityTLS, ConfidenceHigh, MethodAutodiscover, "ews"),
	}
	order(cs)
	var got []string
	for _, x := range cs {
		got = append(got, x.Host)
	}
	want := []string{"imaps-autoconfig", "imaps-srv", "imap-starttls", "ews", "pop3s", "imap-plain", "imaps-mx"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestMXISPDBNames(t *testing.T) {
	for _, tc := range []struct {
		mx, domain string
		want       []string
	}{
		{"mx1.mail.hoster.com", "example.org", []string{"mail.hoster.com", "hoster.com"}},
		{"example-org.mail.protection.outlook.com", "example.org", []string{"mail.protection.outlook.com", "outlook.com"}},
		{"mx.hoster.co.uk", "example.org", []string{"hoster.co.uk"}},
		{"mail.example.org", "example.org", nil},
		{"mx.eu.example.org", "example.org", nil},
	} {
		if got := mxISPDBNames(tc.mx, tc.domain); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("mxISPDBNames(%q, %q) = %q, want %q", tc.mx, tc.domain, got, tc.want)
		}
	}
}

func TestMatchMX(t *testing.T) {
	for host, want := range map[string]string{
		"example-com.mail.protection.outlook.com": "Microsoft 365",
		"ASPMX.L.GOOGLE.COM.":                     "Google Workspace / Gmail",
		"alt1.aspmx.l.google.com":                 "Google Workspace / Gmail",
		"smtp.google.com":                         "Google Workspace / Gmail",
		"mx1.emailsrvr.com":                       "Rackspace Email",
		"in1-smtp.messagingengine.com":            "Fastmail",
		"mx01.mail.icloud.com":                    "Apple iCloud",
		"mx0a-001.pphosted.com":                   "Proofpoint",
		"mail.example.com":                        "",
		"google.com.evil.example":                 "",
	} {
		p, ok := matchMX(host)
		if (want == "") == ok || p.name != want {
			t.Errorf("matchMX(%q) = %q, %v; want %q", host, p.name, ok, want)
		}
	}
}
