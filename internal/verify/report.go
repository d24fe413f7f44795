package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Report is the outcome of one verification.
type Report struct {
	Tool        string    `json:"tool"`
	Version     string    `json:"version"`
	Source      string    `json:"source"`      // redacted address
	Destination string    `json:"destination"` // redacted address
	Settings    Settings  `json:"settings"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	// Bytes says how bytes were compared: "sha256" (both sides serve the
	// message's MIME bytes and the destination keeps them) or
	// "content-equivalent" (the destination rebuilds messages).
	Bytes   string    `json:"byte_comparison"`
	Folders []*Folder `json:"folders"`
	Totals  Totals    `json:"totals"`
	// Differences lists the messages behind the non-exact counts (at
	// most MaxDifferences; DifferencesLeft says how many more).
	Differences     []Difference `json:"differences"`
	DifferencesLeft int64        `json:"differences_left,omitempty"`
	Exact           bool         `json:"exact"`
	Verdict         string       `json:"verdict"`
	// SHA256 is the hex SHA-256 of the report's JSON form with this
	// field empty (see Seal).
	SHA256 string `json:"sha256"`
}

// Settings are the options a verification ran with, as given.
type Settings struct {
	Include        []string `json:"include,omitempty"`
	Exclude        []string `json:"exclude,omitempty"`
	Map            []string `json:"map,omitempty"`
	Since          string   `json:"since,omitempty"`
	Before         string   `json:"before,omitempty"`
	IncludeDeleted bool     `json:"include_deleted,omitempty"`
	// RecordedPlan is set when the folder plan of earlier passes (the
	// sync state) was followed; nothing else of the state is trusted.
	RecordedPlan bool `json:"recorded_plan"`
}

// Folder is one source folder's reconciliation.
type Folder struct {
	Source string `json:"source"`
	Dest   string `json:"destination"`
	Why    string `json:"why"` // "special use \Sent", "mapping rule", "same path", …
	// Plan is migrate.PlanNew (no recorded plan), PlanRecorded (the copy's
	// plan) or PlanRuleChanged (a --map rule now differs from the one
	// the copy recorded, and decides, as it would on the next copy).
	Plan string `json:"plan"`
	// DestMissing: the destination folder does not exist.
	DestMissing bool `json:"destination_missing,omitempty"`
	// Class is set for a folder that holds no mail; it is not compared.
	Class string `json:"class,omitempty"`
	// Error says why the folder could not be compared.
	Error string `json:"error,omitempty"`

	SourceMessages int64 `json:"source_messages"`
	SourceBytes    int64 `json:"source_bytes"`
	// DestMessages is the destination folder's count; folders merged
	// into one destination show the same number.
	DestMessages int64 `json:"destination_messages"`

	// Matched = Exact + Differs + Altered + Equivalent + Unread.
	Matched int64 `json:"matched"`
	Exact   int64 `json:"matched_exact"`
	// Differs: same bytes, other flags and/or date (FlagsDiffer and
	// DateDiffer say which; a message may count in both).
	Differs     int64 `json:"matched_other_flags_or_date"`
	FlagsDiffer int64 `json:"flags_differ"`
	DateDiffer  int64 `json:"date_differs"`
	// Altered: same identity, different bytes.
	Altered int64 `json:"altered"`
	// Equivalent: matched on a destination that rebuilds messages, so
	// bytes cannot be compared.
	Equivalent int64 `json:"content_equivalent"`
	// Unread: matched, but one side could not serve the bytes.
	Unread int64 `json:"unread,omitempty"`

	Missing int64 `json:"missing"`
	// FailedEarlier is how many of the missing messages an earlier pass
	// reported as failed (the reasons are among Differences).
	FailedEarlier int64 `json:"failed_earlier"`
	Skipped       int64 `json:"skipped_by_filter"`
	// Extra is the destination folder's copies that no source message
	// accounts for; shown on the first source folder of a destination.
	Extra int64 `json:"extra"`
}

// Totals sum the folders.
type Totals struct {
	Folders        int   `json:"folders"`
	SourceMessages int64 `json:"source_messages"`
	SourceBytes    int64 `json:"source_bytes"`
	DestMessages   int64 `json:"destination_messages"`
	Matched        int64 `json:"matched"`
	Exact          int64 `json:"matched_exact"`
	Differs        int64 `json:"matched_other_flags_or_date"`
	Altered        int64 `json:"altered"`
	Equivalent     int64 `json:"content_equivalent"`
	Unread         int64 `json:"unread,omitempty"`
	Missing        int64 `json:"missing"`
	FailedEarlier  int64 `json:"failed_earlier"`
	Skipped        int64 `json:"skipped_by_filter"`
	Extra          int64 `json:"extra"`
	Errors         int   `json:"folder_errors"`
}

// Difference is one message behind a non-exact count.
type Difference struct {
	Kind   string `json:"kind"` // missing, failed, altered, flags, date, extra, unread
	Folder string `json:"folder"`
	ID     string `json:"id,omitempty"`      // the source connector's ID
	DestID string `json:"dest_id,omitempty"` // the destination connector's ID
	Detail string `json:"detail,omitempty"`
}

// Difference kinds.
const (
	KindMissing = "missing"
	KindFailed  = "failed earlier"
	KindAltered = "altered"
	KindFlags   = "flags"
	KindDate    = "date"
	KindExtra   = "extra"
	KindUnread  = "unread"
)

// MaxDifferences bounds the differences a report lists one by one.
const MaxDifferences = 1000

// Balance checks that every folder's source messages are accounted for
// exactly once, and that the matched ones split into their columns.
func (f *Folder) Balance() error {
	if f.Error != "" || f.Class != "" {
		return nil
	}
	if s := f.Matched + f.Missing + f.Skipped; s != f.SourceMessages {
		return fmt.Errorf("folder %s: %d source messages, but %d matched + %d missing + %d skipped = %d",
			f.Source, f.SourceMessages, f.Matched, f.Missing, f.Skipped, s)
	}
	if s := f.Exact + f.Differs + f.Altered + f.Equivalent + f.Unread; s != f.Matched {
		return fmt.Errorf("folder %s: %d matched, but the columns add up to %d", f.Source, f.Matched, s)
	}
	return nil
}

// total sums the folders and sets the verdict.
func (r *Report) total() {
	var t Totals
	for _, f := range r.Folders {
		t.Folders++
		t.SourceMessages += f.SourceMessages
		t.SourceBytes += f.SourceBytes
		t.Matched += f.Matched
		t.Exact += f.Exact
		t.Differs += f.Differs
		t.Altered += f.Altered
		t.Equivalent += f.Equivalent
		t.Unread += f.Unread
		t.Missing += f.Missing
		t.FailedEarlier += f.FailedEarlier
		t.Skipped += f.Skipped
		t.Extra += f.Extra
		if f.Error != "" {
			t.Errors++
		}
	}
	seen := map[string]bool{}
	for _, f := range r.Folders {
		if !seen[f.Dest] && f.Class == "" {
			seen[f.Dest] = true
			t.DestMessages += f.DestMessages
		}
	}
	r.Totals = t
	r.Exact = t.Differs == 0 && t.Altered == 0 && t.Unread == 0 && t.Missing == 0 && t.Extra == 0 && t.Errors == 0
	r.Verdict = verdict(t, r.Exact)
}

func verdict(t Totals, exact bool) string {
	if exact {
		how := "byte for byte, with their flags and dates"
		if t.Equivalent > 0 {
			how = fmt.Sprintf("(%d of them content-equivalent: the destination rebuilt them, so their bytes could not be compared)", t.Equivalent)
		}
		s := fmt.Sprintf("EXACT: all %d messages of %d folders are on the destination %s", t.Matched, t.Folders, how)
		if t.Skipped > 0 {
			s += fmt.Sprintf("; %d skipped by a filter", t.Skipped)
		}
		return s + "."
	}
	var parts []string
	add := func(n int64, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(t.Missing, "missing")
	add(t.FailedEarlier, "of them failed earlier")
	add(t.Altered, "altered")
	add(t.Differs, "with other flags or date")
	add(t.Unread, "unreadable")
	add(t.Extra, "extra on the destination")
	add(int64(t.Errors), "folders not compared")
	s := fmt.Sprintf("NOT EXACT: %d of %d messages match exactly", t.Exact+t.Equivalent, t.SourceMessages-t.Skipped)
	for i, p := range parts {
		if i == 0 {
			s += "; "
		} else {
			s += ", "
		}
		s += p
	}
	return s + "."
}

// Seal sets r.SHA256 to the SHA-256 of the report's JSON form with that
// field empty. Anyone can recompute it (Check): a changed count, name or
// time no longer matches. It proves nothing about who made the report.
func (r *Report) Seal() {
	r.SHA256 = r.digest()
}

// Check reports whether r.SHA256 is the digest of r's content.
func (r *Report) Check() bool { return r.SHA256 != "" && r.SHA256 == r.digest() }

func (r *Report) digest() string {
	c := *r
	c.SHA256 = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return "" // only plain data: cannot happen; an empty seal never checks
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
