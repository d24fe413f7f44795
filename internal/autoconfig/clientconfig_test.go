package autoconfig

import (
	"reflect"
	"strings"
	"testing"
)

func mustAddr(t testing.TB, s string) Address {
	t.Helper()
	a, err := ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

// A document in the shape the format definition gives, with the kinds of
// entries real providers publish: placeholders in host and username,
// several authentication values, an exchange server, an outgoing server
// and elements this reader does not know.
const sampleClientConfig = `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example   Mail
      Hosting</displayName>
    <displayShortName>Example</displayShortName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
      <futureElement><nested/></futureElement>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.com</hostname>
      <port>110</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-encrypted</authentication>
      <pop3><leaveMessagesOnServer>true</leaveMessagesOnServer></pop3>
    </incomingServer>
    <incomingServer type="exchange">
      <hostname>mail.example.com</hostname>
      <port>443</port>
      <username>%EMAILADDRESS%</username>
      <socketType>SSL</socketType>
      <authentication>NTLM</authentication>
      <owaURL>https://mail.example.com/owa/</owaURL>
      <ewsURL>https://mail.example.com/EWS/Exchange.asmx</ewsURL>
    </incomingServer>
    <incomingServer type="nntp">
      <hostname>news.example.com</hostname>
      <port>119</port>
      <socketType>plain</socketType>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.com</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
    </outgoingServer>
    <documentation url="https://example.com/help"><descr lang="en">Help</descr></documentation>
  </emailProvider>
  <clientConfigUpdate url="https://autoconfig.example.com/mail/config-v1.1.xml"/>
</clientConfig>`

func TestParseClientConfigReadsEveryIncomingServer(t *testing.T) {
	addr := mustAddr(t, "Alice.Smith@Example.COM")
	got, skipped, err := ParseClientConfig([]byte(sampleClientConfig), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped = %q, want none", skipped)
	}
	want := []ClientConfigServer{
		{Protocol: ProtocolIMAP, Host: "imap.example.com", Port: 993, Security: SecurityTLS,
			Username: "Alice.Smith@example.com", UsernameForm: UsernameAddress, Auth: []Auth{AuthOAuth2, AuthPassword}, Provider: "Example Mail Hosting"},
		{Protocol: ProtocolPOP3, Host: "pop.example.com", Port: 110, Security: SecuritySTARTTLS,
			Username: "Alice.Smith", UsernameForm: UsernameLocalPart, Auth: []Auth{AuthPasswordEncrypted}, Provider: "Example Mail Hosting"},
		{Protocol: ProtocolEWS, Host: "mail.example.com", Port: 443, Security: SecurityTLS, URL: "https://mail.example.com/EWS/Exchange.asmx",
			Username: "Alice.Smith@example.com", UsernameForm: UsernameAddress, Auth: []Auth{AuthNTLM}, Provider: "Example Mail Hosting"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseClientConfigSkipsUnusableServersWithAReason(t *testing.T) {
	addr := mustAddr(t, "bob@example.org")
	doc := `<clientConfig version="1.1"><emailProvider id="x">
	<incomingServer type="imap"><hostname>imap.example.org</hostname><port>99999</port><socketType>SSL</socketType></incomingServer>
	<incomingServer type="imap"><hostname>bad host/name</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
	<incomingServer type="imap"><hostname>imap.example.org</hostname><port>143</port></incomingServer>
	<incomingServer type="imap"><hostname>imap.example.org</hostname><port>143</port><socketType>TLS1.3</socketType></incomingServer>
	<incomingServer type="exchange"><ewsURL>http://plain.example.org/EWS/Exchange.asmx</ewsURL></incomingServer>
	<incomingServer type="pop3"><hostname>POP.Example.org.</hostname><port> 995 </port><socketType>ssl</socketType><username>u-%EMAILLOCALPART%-7</username></incomingServer>
	</emailProvider></clientConfig>`
	got, skipped, err := ParseClientConfig([]byte(doc), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Host != "pop.example.org" || got[0].Port != 995 || got[0].Security != SecurityTLS ||
		got[0].Username != "u-bob-7" || got[0].UsernameForm != UsernameCustom {
		t.Errorf("got %+v, want only the POP3 server with a custom username", got)
	}
	wantReasons := []string{"no valid port", "no valid host name", "no socketType", "unknown socketType", "neither an https ewsURL"}
	if len(skipped) != len(wantReasons) {
		t.Fatalf("skipped = %q, want %d reasons", skipped, len(wantReasons))
	}
	for i, w := range wantReasons {
		if !strings.Contains(skipped[i], w) {
			t.Errorf("reason %d = %q, want it to mention %q", i, skipped[i], w)
		}
	}
}

func TestParseClientConfigDerivesEWSFromOWA(t *testing.T) {
	addr := mustAddr(t, "carol@example.net")
	doc := `<clientConfig><emailProvider><incomingServer type="exchange">
	  <hostname>ignored.example.net</hostname><owaURL>https://webmail.example.net:8443/owa/</owaURL>
	</incomingServer></emailProvider></clientConfig>`
	got, _, err := ParseClientConfig([]byte(doc), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].URL != "https://webmail.example.net:8443/EWS/Exchange.asmx" || got[0].Host != "webmail.example.net" || got[0].Port != 8443 {
		t.Errorf("got %+v", got)
	}
}

func TestParseClientConfigUnknownPlaceholderMakesUsernameAGuess(t *testing.T) {
	addr := mustAddr(t, "dave@example.com")
	doc := `<clientConfig><emailProvider><incomingServer type="imap">
	  <hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType><username>%REALNAME%</username>
	</incomingServer></emailProvider></clientConfig>`
	got, _, err := ParseClientConfig([]byte(doc), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Username != "dave@example.com" || got[0].UsernameForm != UsernameGuess {
		t.Errorf("got %+v", got)
	}
}

func TestParseClientConfigRefusesWhatIsNotAClientConfig(t *testing.T) {
	addr := mustAddr(t, "erin@example.com")
	for name, doc := range map[string]string{
		"html":          "<!DOCTYPE html><html><body>Welcome</body></html>",
		"other root":    "<Autodiscover><Response/></Autodiscover>",
		"truncated":     "<clientConfig><emailProvider><incomingServer type=\"imap\">",
		"binary":        "\x00\x01\x02\xff\xfe",
		"empty":         "",
		"other charset": `<?xml version="1.0" encoding="Shift_JIS"?><clientConfig/>`,
	} {
		if _, _, err := ParseClientConfig([]byte(doc), addr); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseClientConfigReadsLatin1AndByteOrderMark(t *testing.T) {
	addr := mustAddr(t, "frank@example.com")
	doc := "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><clientConfig><emailProvider><displayName>M\xfcnchen Mail</displayName>" +
		"<incomingServer type=\"imap\"><hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>"
	// The BOM says UTF-8 while the declaration says Latin-1; the
	// declaration wins for the body, which is what an editor that adds a
	// BOM to a Latin-1 file produces.
	got, _, err := ParseClientConfig([]byte(doc), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Provider != "München Mail" {
		t.Errorf("got %+v", got)
	}
}

func TestParseClientConfigBoundsServers(t *testing.T) {
	addr := mustAddr(t, "gina@example.com")
	var b strings.Builder
	b.WriteString("<clientConfig><emailProvider>")
	for range 100 {
		b.WriteString(`<incomingServer type="imap"><hostname>imap.example.com</hostname><port>993</port><socketType>SSL</socketType></incomingServer>`)
	}
	b.WriteString("</emailProvider></clientConfig>")
	got, skipped, err := ParseClientConfig([]byte(b.String()), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxServers || len(skipped) != 1 {
		t.Errorf("got %d servers and %q, want %d and one note", len(got), skipped, maxServers)
	}
}

func TestReadAuthNormalises(t *testing.T) {
	got := readAuth([]string{" OAuth2 ", "plain", "password-cleartext", "secure", "client-IP-address", "TLS-client-cert", "GSSAPI", "something-new"})
	want := []Auth{AuthOAuth2, AuthPassword, AuthPasswordEncrypted, AuthNone, AuthClientCert, AuthGSSAPI}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
