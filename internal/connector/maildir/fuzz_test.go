package maildir

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailferry/mailferry/internal/mail"
)

// FuzzParseName: any file name parses without panicking; its parts put
// together give the name again; flags written back and read again are the
// same; and renaming for flags keeps the ID and Dovecot's fields.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1491941793.M41850P8566V0000000000000015I0000000004F3030E_0.mx1.example.com,S=10956:2,STln",
		"1035478339.27041_118.foo.org,S=1000,W=1030:2,S",
		"1.2.host:2,Sb,X=dovecot", "plain", "a:1,experimental", ":2,", "x:2,", "x:y:2,FS", "",
	} {
		f.Add(s)
	}
	kws := []string{"$Junk", "Work", "", "$Label1"}
	f.Fuzz(func(t *testing.T, name string) {
		n := parseName(name)
		if n.hasInfo && name != n.base+":2,"+n.letters+n.extra || !n.hasInfo && !strings.HasPrefix(name, n.base) {
			t.Fatalf("%q taken apart as %+v", name, n)
		}
		flags := flagsOf(n.letters, kws)
		letters, err := lettersOf(flags, func(k string) (byte, bool) { return keywordLetter(kws, k) })
		if err != nil {
			t.Fatal(err)
		}
		if again := flagsOf(letters, kws); !sameSet(again, flags) {
			t.Fatalf("%q: flags %v written as %q read back as %v", name, flags, letters, again)
		}
		re := parseName(curName(n.base, letters, n.extra))
		if n.hasInfo && (re.base != n.base || re.extra != n.extra || re.size != n.size) {
			t.Fatalf("%q: renamed %+v, was %+v", name, re, n)
		}
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !mail.HasFlag(b, x) {
			return false
		}
	}
	return true
}

// FuzzFolderNames: every folder name survives the trip to a directory
// name and back in both layouts, and the directory name is one path
// element that hides nothing ('.', '..', a leading '.' in fs).
func FuzzFolderNames(f *testing.F) {
	for _, p := range []string{"Ärger & Co", "a&b", "&-literal", "Dots.in.name", "slash/inside", ".hidden", "cur", "back\\slash", "\\2e", "&AMQ-", "日本語"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		if seg == "" || !utf8.ValidString(seg) || strings.ContainsRune(seg, 0) {
			return
		}
		for _, layout := range []string{layoutMaildirPP, layoutFS} {
			d := escapeSegment(seg, layout)
			if strings.Contains(d, "/") || d == "." || d == ".." || layout == layoutFS && (strings.HasPrefix(d, ".") || d == "cur" || d == "new" || d == "tmp") || layout == layoutMaildirPP && strings.Contains(d, ".") {
				t.Fatalf("%s: %q stored as %q", layout, seg, d)
			}
			if back := unescapeSegment(d); back != seg {
				t.Fatalf("%s: %q stored as %q read back as %q", layout, seg, d, back)
			}
		}
	})
}
