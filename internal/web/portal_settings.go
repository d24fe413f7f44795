package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/autoconfig"
	"github.com/mailferry/mailferry/internal/service"
)

// Settings from the address (issue 17, item 5). "Start new migration"
// has an optional address field; the page's script asks settings.json
// for the source settings that public data gives for it (SRV records,
// autoconfig files, the ISPDB, Autodiscover, the MX host: package
// autoconfig) and offers them for the user to confirm or edit. The
// lookup runs only when asked, has the finder's short timeouts, goes
// through the operator's outbound policy (the finder's Dial and
// CheckAddr), and never blocks the form: the field is not part of it.

// SettingsFinder finds the mail settings of an address
// (*autoconfig.Finder).
type SettingsFinder interface {
	Lookup(ctx context.Context, address string) (*autoconfig.Result, error)
}

// maxLookups bounds the lookups running at once for all users: each one
// sends a few DNS questions and HTTP requests to the domain's servers.
const maxLookups = 8

// lookupTimeout bounds one request, above the finder's own budget.
const lookupTimeout = 6 * time.Second

// settingsSuggestion is one setting offered to the user.
type settingsSuggestion struct {
	Type       string `json:"type"` // a source type of the form: imap, pop3, exchange, m365
	Host       string `json:"host"`
	Port       int    `json:"port"`
	Security   string `json:"security"`
	Username   string `json:"username,omitempty"`
	Label      string `json:"label"` // e.g. "IMAP · imap.example.com · port 993 · SSL/TLS"
	From       string `json:"from"`  // where it was found, for people
	Confidence string `json:"confidence"`
	Notes      string `json:"notes,omitempty"`
}

type settingsAnswer struct {
	Address     string               `json:"address"`
	Domain      string               `json:"domain"`
	Provider    string               `json:"provider,omitempty"`
	Suggestions []settingsSuggestion `json:"suggestions"`
	// Notes are what the user should know besides (e.g. a Microsoft
	// 365 tenant while Microsoft 365 sources are not offered).
	Notes []string `json:"notes"`
}

var methodNames = map[autoconfig.Method]string{
	autoconfig.MethodSRV:          "DNS SRV records (RFC 6186)",
	autoconfig.MethodAutoconfig:   "the domain's autoconfig file",
	autoconfig.MethodISPDB:        "the Thunderbird ISPDB",
	autoconfig.MethodISPDBMX:      "the ISPDB entry of the domain's mail host",
	autoconfig.MethodAutodiscover: "Exchange Autodiscover",
	autoconfig.MethodMX:           "the domain's MX records",
}

// protocolTypes maps the finder's protocols to the form's source types.
var protocolTypes = map[autoconfig.Protocol]string{
	autoconfig.ProtocolIMAP: "imap", autoconfig.ProtocolPOP3: "pop3",
	autoconfig.ProtocolEWS: "exchange", autoconfig.ProtocolGraph: "m365",
}

func enabledType(v string) (sourceType, bool) {
	for _, t := range sourceTypes {
		if t.Value == v {
			return t, t.Enabled
		}
	}
	return sourceType{}, false
}

// suggest turns a lookup's result into what the page offers.
func suggest(res *autoconfig.Result) settingsAnswer {
	a := settingsAnswer{Address: res.Address, Domain: res.Domain, Provider: res.Provider, Suggestions: []settingsSuggestion{}, Notes: []string{}}
	for _, c := range res.Candidates {
		typ := protocolTypes[c.Protocol]
		st, ok := enabledType(typ)
		var from []string
		for _, src := range c.Sources {
			if n := methodNames[src.Method]; n != "" && !contains(from, n) {
				from = append(from, n)
			}
		}
		where := strings.Join(from, ", ")
		if !ok || c.Host == "" || c.Port == 0 {
			what := st.Label
			if what == "" {
				what = strings.ToUpper(string(c.Protocol))
			}
			if c.Provider != "" {
				what = c.Provider + " (" + what + ")"
			}
			msg := fmt.Sprintf("%s found in %s", what, where)
			if c.URL != "" {
				msg += " at " + c.URL
			} else if c.Host != "" {
				msg += " at " + c.Host
			}
			if !ok {
				msg += ": this source type is not offered yet, so enter IMAP or POP3 settings if the server has them."
			} else if typ == service.TypeM365 {
				// Graph has no server to fill in: the app registration is.
				msg += ": choose " + st.Label + " as the source and enter its app registration."
			} else {
				msg += "."
			}
			a.Notes = append(a.Notes, msg)
			continue
		}
		sec := string(c.Security)
		if sec == "" {
			sec = "tls"
		}
		a.Suggestions = append(a.Suggestions, settingsSuggestion{
			Type: typ, Host: c.Host, Port: c.Port, Security: sec, Username: c.Username,
			Label:      fmt.Sprintf("%s · %s · port %d · %s", st.Label, c.Host, c.Port, securityLabel(sec)),
			From:       where,
			Confidence: string(c.Confidence),
			Notes:      strings.Join(c.Notes, "; "),
		})
	}
	if len(a.Suggestions) == 0 && len(a.Notes) == 0 {
		if res.Provider != "" {
			a.Notes = append(a.Notes, "The domain's mail is handled by "+res.Provider+", but no server settings were published.")
		} else {
			a.Notes = append(a.Notes, "No server settings are published for "+res.Domain+". Enter them yourself: your mail provider's help pages or your mail program's account settings have them.")
		}
	}
	return a
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// settingsJSON answers the page's lookup of an address.
func (s *Server) settingsJSON(w http.ResponseWriter, r *http.Request, sess *service.Session) {
	f := s.portal.cfg.Settings
	if f == nil {
		writeError(w, http.StatusNotFound, "looking up settings is turned off on this service; enter the server settings yourself")
		return
	}
	addr := strings.TrimSpace(r.URL.Query().Get("email"))
	select {
	case s.portal.lookups <- struct{}{}:
		defer func() { <-s.portal.lookups }()
	default:
		writeError(w, http.StatusTooManyRequests, "many lookups are running right now; enter the settings yourself or try again in a few seconds")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), lookupTimeout)
	defer cancel()
	res, err := f.Lookup(ctx, addr)
	if err != nil {
		// Only "not an email address" comes back as an error.
		writeError(w, http.StatusBadRequest, "enter a whole email address, e.g. name@yourcompany.com, to look up its settings")
		return
	}
	for _, n := range res.Notes {
		if n.Detail != "" {
			// The operator's log gets what a refused or failed method did;
			// the user only what to do.
			s.log.Info("settings lookup", "domain", res.Domain, "method", n.Method, "where", n.Where, "detail", n.Detail)
		}
	}
	writeJSON(w, http.StatusOK, suggest(res))
}
