package migrate

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mailferry/mailferry/internal/mail"
)

// Rules are the user's folder filters and mappings in MigrationWiz's
// syntax: case-insensitive regular expressions over the source path with
// '/' as separator and no leading or trailing slash.
type Rules struct {
	Include  []*regexp.Regexp
	Exclude  []*regexp.Regexp
	Mappings []Mapping
}

// Mapping rewrites matching source paths: the part of the path matched by
// From is replaced by To ($1 and ${name} expand).
type Mapping struct {
	From *regexp.Regexp
	To   string
	Raw  string
}

// ParseFilter compiles one include or exclude rule.
func ParseFilter(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("(?i)" + expr)
	if err != nil {
		return nil, fmt.Errorf("folder filter %q is not a valid regular expression: %v", expr, err)
	}
	return re, nil
}

// ParseMapping reads "^Source/Path->Destination/Path".
func ParseMapping(rule string) (Mapping, error) {
	from, to, ok := strings.Cut(rule, "->")
	if !ok || from == "" {
		return Mapping{}, fmt.Errorf("folder mapping %q: expected the form ^Source/Path->Destination/Path", rule)
	}
	re, err := regexp.Compile("(?i)" + from)
	if err != nil {
		return Mapping{}, fmt.Errorf("folder mapping %q: %q is not a valid regular expression: %v", rule, from, err)
	}
	// An empty target strips a prefix ("^INBOX/->" lifts INBOX's
	// subfolders to the top). For a whole folder ("^Junk$->") it would
	// leave an empty path, which becomes INBOX: that is almost certainly
	// not meant, so it has to be said.
	literal := strings.TrimSuffix(strings.TrimPrefix(from, "^"), "$")
	if strings.TrimSpace(to) == "" && !strings.HasSuffix(from, "/") && !strings.EqualFold(literal, mail.InboxName) {
		return Mapping{}, fmt.Errorf("folder mapping %q has an empty target, which would move the whole folder into INBOX. "+
			"An empty target only strips a prefix (like '^Old/->'); to put the folder's mail into the inbox, say so: '%s->INBOX'", rule, from)
	}
	return Mapping{From: re, To: to, Raw: rule}, nil
}

// Selected reports whether the rules let a source path through.
func (r Rules) Selected(p mail.Path) bool {
	s := p.String()
	if len(r.Include) > 0 {
		ok := false
		for _, re := range r.Include {
			if re.MatchString(s) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range r.Exclude {
		if re.MatchString(s) {
			return false
		}
	}
	return true
}

// Map applies the first matching mapping. ok is false when none matched.
func (r Rules) Map(p mail.Path) (mail.Path, bool) {
	s := p.String()
	for _, m := range r.Mappings {
		loc := m.From.FindStringSubmatchIndex(s)
		if loc == nil {
			continue
		}
		var out []byte
		out = m.From.ExpandString(out, m.To, s, loc)
		mapped := s[:loc[0]] + string(out) + s[loc[1]:]
		q := mail.ParsePath(mapped)
		if len(q) == 0 {
			// "^INBOX->" maps the inbox itself to the top, which is
			// the inbox again.
			q = mail.Path{mail.InboxName}
		}
		return q.Canonical(), true
	}
	return nil, false
}

// ParseRules compiles the user's include and exclude filters and mapping
// rules, as the CLI flags, the service's project options and the portal
// give them.
func ParseRules(include, exclude, mappings []string) (Rules, error) {
	var r Rules
	for _, e := range include {
		re, err := ParseFilter(e)
		if err != nil {
			return r, err
		}
		r.Include = append(r.Include, re)
	}
	for _, e := range exclude {
		re, err := ParseFilter(e)
		if err != nil {
			return r, err
		}
		r.Exclude = append(r.Exclude, re)
	}
	for _, m := range mappings {
		mp, err := ParseMapping(m)
		if err != nil {
			return r, err
		}
		r.Mappings = append(r.Mappings, mp)
	}
	return r, nil
}
