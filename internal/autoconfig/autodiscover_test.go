package autoconfig

import (
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
)

// An Exchange answer in the shape of Microsoft's "POX Autodiscover
// response for Exchange" page, with the http:// namespaces real servers
// use, an EXCH, an EXPR and a WEB protocol.
const sampleAutodiscoverExchange = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User>
      <DisplayName>Alice Example</DisplayName>
      <LegacyDN>/o=Example/ou=Exchange Administrative Group/cn=Recipients/cn=alice</LegacyDN>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <Protocol>
        <Type>EXCH</Type>
        <Server>MBX01.corp.example.com</Server>
        <ASUrl>https://mail.example.com/ews/exchange.asmx</ASUrl>
        <EwsUrl>https://internal.example.com/EWS/Exchange.asmx</EwsUrl>
      </Protocol>
      <Protocol>
        <Type>EXPR</Type>
        <Server>mail.example.com</Server>
        <EwsUrl>https://mail.example.com/EWS/Exchange.asmx</EwsUrl>
        <SomethingNewer>ignored</SomethingNewer>
      </Protocol>
      <Protocol>
        <Type>WEB</Type>
        <External>
          <OWAUrl AuthenticationMethod="Fba">https://mail.example.com/owa/</OWAUrl>
        </External>
        <Internal>
          <OWAUrl AuthenticationMethod="Ntlm, WindowsIntegrated">https://internal.example.com/owa/</OWAUrl>
          <OWAUrl AuthenticationMethod="Basic">http://plain.example.com/owa/</OWAUrl>
        </Internal>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>`

func TestParseAutodiscoverExchangeSettings(t *testing.T) {
	a, err := ParseAutodiscover([]byte(sampleAutodiscoverExchange), mustAddr(t, "alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Action != "settings" || a.DisplayName != "Alice Example" || a.ErrorCode != "" {
		t.Errorf("got %+v", a)
	}
	// EXPR (outside the network) comes before EXCH.
	wantEWS := []string{"https://mail.example.com/EWS/Exchange.asmx", "https://internal.example.com/EWS/Exchange.asmx"}
	if !reflect.DeepEqual(a.EWSURLs, wantEWS) {
		t.Errorf("EWSURLs = %q, want %q", a.EWSURLs, wantEWS)
	}
	// External before Internal; the http:// one is dropped.
	wantOWA := []string{"https://mail.example.com/owa/", "https://internal.example.com/owa/"}
	if !reflect.DeepEqual(a.OWAURLs, wantOWA) {
		t.Errorf("OWAURLs = %q, want %q", a.OWAURLs, wantOWA)
	}
}

func TestParseAutodiscoverFallsBackToASUrl(t *testing.T) {
	doc := `<Autodiscover><Response><Account><Action>settings</Action>
	  <Protocol><Type>WEB</Type><External><Protocol><Type>EXPR</Type><ASUrl>https://mail.example.com/ews/exchange.asmx</ASUrl></Protocol></External></Protocol>
	</Account></Response></Autodiscover>`
	a, err := ParseAutodiscover([]byte(doc), mustAddr(t, "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.EWSURLs, []string{"https://mail.example.com/ews/exchange.asmx"}) {
		t.Errorf("EWSURLs = %q", a.EWSURLs)
	}
}

// The https:// namespaces of Microsoft's reference pages read the same.
func TestParseAutodiscoverAcceptsEitherNamespace(t *testing.T) {
	doc := strings.ReplaceAll(sampleAutodiscoverExchange, "http://schemas", "https://schemas")
	a, err := ParseAutodiscover([]byte(doc), mustAddr(t, "alice@example.com"))
	if err != nil || len(a.EWSURLs) != 2 {
		t.Fatalf("got %+v, %v", a, err)
	}
}

// What hosting providers serve Outlook: IMAP and POP3 settings in POX
// form, with SSL/Encryption in their various spellings.
func TestParseAutodiscoverHosterMailSettings(t *testing.T) {
	doc := `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
	<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account>
	  <AccountType>email</AccountType><Action>settings</Action>
	  <Protocol><Type>IMAP</Type><Server>imap.example.com</Server><Port>993</Port><SSL>on</SSL><LoginName>alice@example.com</LoginName><SPA>off</SPA></Protocol>
	  <Protocol><Type>IMAP</Type><Server>imap.example.com</Server><Port>143</Port><SSL>on</SSL><Encryption>TLS</Encryption></Protocol>
	  <Protocol><Type>POP3</Type><Server>pop.example.com</Server><Port>110</Port><SSL>off</SSL><LoginName>u1234</LoginName></Protocol>
	  <Protocol><Type>SMTP</Type><Server>smtp.example.com</Server><Port>587</Port></Protocol>
	  <Protocol><Type>IMAP</Type><Server>not a host</Server><Port>993</Port></Protocol>
	</Account></Response></Autodiscover>`
	a, err := ParseAutodiscover([]byte(doc), mustAddr(t, "alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientConfigServer{
		{Protocol: ProtocolIMAP, Host: "imap.example.com", Port: 993, Security: SecurityTLS, Username: "alice@example.com", UsernameForm: UsernameAddress, Auth: []Auth{AuthPassword}},
		{Protocol: ProtocolIMAP, Host: "imap.example.com", Port: 143, Security: SecuritySTARTTLS, Username: "alice@example.com", UsernameForm: UsernameGuess, Auth: []Auth{AuthPassword}},
		{Protocol: ProtocolPOP3, Host: "pop.example.com", Port: 110, Security: SecurityNone, Username: "u1234", UsernameForm: UsernameCustom, Auth: []Auth{AuthPassword}},
	}
	if !reflect.DeepEqual(a.Mail, want) {
		t.Errorf("Mail =\n%+v\nwant\n%+v", a.Mail, want)
	}
}

func TestParseAutodiscoverRedirectsAndErrors(t *testing.T) {
	addr := mustAddr(t, "alice@example.com")
	for _, tc := range []struct {
		name, doc string
		check     func(*AutodiscoverAnswer) bool
	}{
		{"redirectUrl", `<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>https://other.example.net/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool {
				return a.Action == "redirectUrl" && a.RedirectURL == "https://other.example.net/autodiscover/autodiscover.xml"
			}},
		{"redirectUrl to http is dropped", `<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectURL>http://other.example.net/a.xml</RedirectURL></Account></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool { return a.Action == "redirectUrl" && a.RedirectURL == "" }},
		{"redirectAddr", `<Autodiscover><Response><Account><Action>redirectAddr</Action><RedirectAddr>alice@example.mail.onmicrosoft.com</RedirectAddr></Account></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool {
				return a.Action == "redirectAddr" && a.RedirectAddr == "alice@example.mail.onmicrosoft.com"
			}},
		{"error", `<Autodiscover><Response><Error Time="16:42:44.4511238" Id="2589673531"><ErrorCode>600</ErrorCode><Message>Invalid Request</Message></Error></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool { return a.ErrorCode == "600" && a.ErrorMessage == "Invalid Request" }},
		{"account error", `<Autodiscover><Response><Account><Error><ErrorCode>500</ErrorCode><Message>The e-mail address cannot be found.</Message></Error></Account></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool { return a.ErrorCode == "500" }},
		{"Microsoft 365", `<Autodiscover><Response><Account><Action>settings</Action><MicrosoftOnline>True</MicrosoftOnline></Account></Response></Autodiscover>`,
			func(a *AutodiscoverAnswer) bool { return a.MicrosoftOnline }},
	} {
		a, err := ParseAutodiscover([]byte(tc.doc), addr)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(a) {
			t.Errorf("%s: got %+v", tc.name, a)
		}
	}
}

func TestParseAutodiscoverRefusesOtherDocuments(t *testing.T) {
	for _, doc := range []string{"<html><body>404</body></html>", sampleClientConfig, "{\"Protocol\":\"EWS\"}", ""} {
		if _, err := ParseAutodiscover([]byte(doc), mustAddr(t, "a@example.com")); err == nil {
			t.Errorf("no error for %.40q", doc)
		}
	}
}

// The request is the documented POX request, and an address with XML
// special characters cannot break out of its element.
func TestAutodiscoverRequestShape(t *testing.T) {
	var req struct {
		XMLName xml.Name `xml:"Autodiscover"`
		Request struct {
			EMailAddress             string
			AcceptableResponseSchema string
		}
	}
	body := autodiscoverRequest(`o'brien&<x>@example.com`)
	if err := xml.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if req.XMLName.Space != "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006" {
		t.Errorf("namespace %q", req.XMLName.Space)
	}
	if req.Request.EMailAddress != `o'brien&<x>@example.com` {
		t.Errorf("EMailAddress %q", req.Request.EMailAddress)
	}
	if req.Request.AcceptableResponseSchema != "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a" {
		t.Errorf("AcceptableResponseSchema %q", req.Request.AcceptableResponseSchema)
	}
}
