package service

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MailboxInput is one mailbox pair as entered by a user.
type MailboxInput struct {
	SourceEmail, SourceLogin, SourcePassword string
	DestEmail, DestLogin, DestPassword       string
	Flags                                    string
	// AskUser: the passwords may be left out; the admin asks the
	// mailbox's user for them (AskForPasswords).
	AskUser bool
}

// RowError locates a problem for the user: Row is the 1-based line number in
// the file (header = row 1), Column the header name as written in the file
// ("" for row-level problems).
type RowError struct {
	Row     int    `json:"row"`
	Column  string `json:"column"`
	Message string `json:"message"`
}

// Error reads like `row 4, column "Source Email": "bob@" is not a valid email
// address` so that a list of them can be shown to the user as is.
func (e RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Message)
}

// ErrEmptyCSV is returned by ParseMailboxCSV for a file that has a header but
// no mailbox lines, so callers can tell it from a malformed file.
var ErrEmptyCSV = errors.New("the file has no mailboxes: add one line per mailbox below the header")

// ParseMailboxCSV reads a whole CSV. It is all-or-nothing: if any row is
// invalid, it returns no mailboxes and every problem found (not just the
// first), sorted by row. The error is non-nil only when the file as a whole
// cannot be used (empty, not CSV, no header, too large, unreadable); its
// message is written for the user. No message ever quotes a password.
func ParseMailboxCSV(r io.Reader) ([]MailboxInput, []RowError, error) {
	return parseMailboxCSV(r, sideAuth{})
}

// ParseMailboxCSVFor is ParseMailboxCSV; with askUsers the password
// columns may be left out or empty: a row with addresses only is a
// mailbox whose user will enter their own passwords (AskUser). A row
// must then give both passwords or neither.
func ParseMailboxCSVFor(r io.Reader, askUsers bool) ([]MailboxInput, []RowError, error) {
	return parseMailboxCSV(r, sideAuth{askUsers: askUsers})
}

// parseMailboxCSV is ParseMailboxCSV for a project whose sides may use
// admin credentials: such a side's password column is optional and must
// be empty on every row.
func parseMailboxCSV(r io.Reader, auth sideAuth) ([]MailboxInput, []RowError, error) {
	askUsers := auth.askUsers
	const (
		maxBytes      = 1 << 20
		maxRows       = 10000
		fullHeader    = "Source Email,Source Login Name,Source Password,Destination Email,Destination Login Name,Destination Password,Flags"
		minimalHeader = "Source Email,Source Password,Destination Email,Destination Password"
	)
	const (
		colSourceEmail = iota
		colSourceLogin
		colSourcePassword
		colDestEmail
		colDestLogin
		colDestPassword
		colFlags
		numCols
	)
	names := [numCols]string{"Source Email", "Source Login Name", "Source Password", "Destination Email", "Destination Login Name", "Destination Password", "Flags"}
	required := [numCols]bool{colSourceEmail: true, colSourcePassword: !auth.srcAdmin && !askUsers, colDestEmail: true,
		colDestPassword: !auth.dstAdmin && !askUsers}
	adminSide := [numCols]bool{colSourcePassword: auth.srcAdmin, colDestPassword: auth.dstAdmin}
	adminKinds := [numCols]string{colSourcePassword: auth.srcKind, colDestPassword: auth.dstKind}

	// Read everything up front: the cap keeps memory bounded, and having the
	// bytes lets us sniff the encoding and delimiter before parsing.
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the file: %w", err)
	}
	if len(data) > maxBytes {
		return nil, nil, fmt.Errorf("the file is larger than 1 MiB; split it into several files of at most %d mailboxes each", maxRows)
	}
	// Excel's "CSV UTF-8" writes a BOM, which would otherwise stick to the
	// first column name.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	// UTF-16 ("Unicode text") and legacy code pages would parse, but would
	// silently mangle non-ASCII passwords, so refuse them outright.
	if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
		return nil, nil, errors.New(`the file is not a CSV text file: in your spreadsheet program use "Save As" and choose "CSV UTF-8 (comma delimited)"`)
	}

	// Spreadsheets in locales with a decimal comma export with semicolons.
	delim := ','
	for line := range strings.Lines(string(data)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.Contains(line, ";") && !strings.Contains(line, ",") {
			delim = ';'
		}
		break
	}
	delimName := "comma"
	if delim == ';' {
		delimName = "semicolon"
	}
	inDelim := func(h string) string { return strings.ReplaceAll(h, ",", string(delim)) }
	acceptedHeaders := fmt.Sprintf("the header must be %q or %q", inDelim(fullHeader), inDelim(minimalHeader))
	if askUsers {
		acceptedHeaders = fmt.Sprintf("the header must be %q, %q or %q", inDelim(fullHeader), inDelim(minimalHeader),
			inDelim("Source Email,Destination Email"))
	}

	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = delim
	// Field counts are checked per row so that one short row becomes a
	// row error instead of aborting the whole file.
	cr.FieldsPerRecord = -1

	// Excel writes empty rows as a line of bare delimiters, which csv.Reader
	// does not skip by itself.
	blank := func(rec []string) bool {
		for _, f := range rec {
			if strings.TrimSpace(f) != "" {
				return false
			}
		}
		return true
	}
	// A csv.ParseError carries positions only, never field contents, so it
	// is safe to pass on even when the bad field is a password.
	describeParseError := func(pe *csv.ParseError) string {
		return fmt.Sprintf("the line is not valid CSV (%v); a value that contains a %s or a double quote must be in double quotes, with each double quote inside it doubled", pe.Err, delimName)
	}

	var header []string
	headerRow := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil, nil, fmt.Errorf("the file is empty: the first line must be a header; %s", acceptedHeaders)
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("the file is not a valid CSV file: line %d: %s", pe.StartLine, describeParseError(pe))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading the file: %w", err)
		}
		if blank(rec) {
			continue
		}
		header = rec
		headerRow, _ = cr.FieldPos(0)
		break
	}

	normalize := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	// distance is a plain Levenshtein distance, used only to suggest the
	// intended column name for a typo.
	distance := func(a, b string) int {
		ra, rb := []rune(a), []rune(b)
		prev := make([]int, len(rb)+1)
		cur := make([]int, len(rb)+1)
		for j := range prev {
			prev[j] = j
		}
		for i := 1; i <= len(ra); i++ {
			cur[0] = i
			for j := 1; j <= len(rb); j++ {
				cost := 1
				if ra[i-1] == rb[j-1] {
					cost = 0
				}
				cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			}
			prev, cur = cur, prev
		}
		return prev[len(rb)]
	}

	var errs []RowError
	pos := [numCols]int{}
	for k := range pos {
		pos[k] = -1
	}
	columnNames := make([]string, len(header))
	unnamed := make([]bool, len(header))
	var unknown []int
	for i, cell := range header {
		name := strings.TrimSpace(cell)
		columnNames[i] = name
		if name == "" {
			unnamed[i] = true
			continue
		}
		k := slices.IndexFunc(names[:], func(n string) bool { return normalize(n) == normalize(name) })
		switch {
		case k < 0:
			unknown = append(unknown, i)
		case pos[k] >= 0:
			errs = append(errs, RowError{Row: headerRow, Column: name,
				Message: fmt.Sprintf("the column appears twice (columns %d and %d); keep only one", pos[k]+1, i+1)})
		default:
			pos[k] = i
		}
	}
	if !slices.ContainsFunc(pos[:], func(p int) bool { return p >= 0 }) {
		// Nothing matched, so this is most likely a data line. Its contents
		// are deliberately not echoed: they may include a password.
		return nil, nil, fmt.Errorf("the first line is not a header; %s", acceptedHeaders)
	}
	for _, i := range unknown {
		name := columnNames[i]
		msg := "unknown column"
		best, bestDist := "", 4
		for _, n := range names {
			if d := distance(normalize(name), normalize(n)); d < bestDist {
				best, bestDist = n, d
			}
		}
		if best != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", best)
		}
		errs = append(errs, RowError{Row: headerRow, Column: name,
			Message: fmt.Sprintf("%s; the accepted columns are %s", msg, strings.Join(names[:], ", "))})
	}
	var missing []string
	for k := range numCols {
		if required[k] && pos[k] < 0 {
			missing = append(missing, strconv.Quote(names[k]))
		}
	}
	if len(missing) > 0 {
		askHint := ""
		if !askUsers && (pos[colSourcePassword] < 0 || pos[colDestPassword] < 0) {
			askHint = `; to import addresses only, for users who will enter their own passwords, tick "My users will enter their own passwords"`
		}
		word := "column"
		if len(missing) > 1 {
			word = "columns"
		}
		errs = append(errs, RowError{Row: headerRow,
			Message: fmt.Sprintf("missing %s %s; %s%s", word, strings.Join(missing, ", "), acceptedHeaders, askHint)})
	}

	validEmail := func(s string) bool {
		if strings.Count(s, "@") != 1 {
			return false
		}
		local, domain, _ := strings.Cut(s, "@")
		if local == "" || domain == "" {
			return false
		}
		// net/mail does not understand IPv6 literals, so literals are
		// checked with netip and only the local part goes through net/mail.
		if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
			ip, err := netip.ParseAddr(strings.TrimPrefix(domain[1:len(domain)-1], "IPv6:"))
			if err != nil || ip.Zone() != "" {
				return false
			}
			a, err := mail.ParseAddress(local + "@example.com")
			return err == nil && a.Name == "" && a.Address == local+"@example.com"
		}
		// A bare address only: "Bob <bob@example.com>" would parse, but the
		// display name has no place in a login.
		a, err := mail.ParseAddress(s)
		if err != nil || a.Name != "" || a.Address != s {
			return false
		}
		labels := strings.Split(domain, ".")
		if len(labels) < 2 {
			return false
		}
		for _, l := range labels {
			if l == "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
				return false
			}
		}
		return true
	}

	var out []MailboxInput
	seen := map[string]int{}
	rows := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			rows++
			errs = append(errs, RowError{Row: pe.StartLine, Message: describeParseError(pe)})
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading the file: %w", err)
		}
		if blank(rec) {
			continue
		}
		rows++
		if rows > maxRows {
			return nil, nil, fmt.Errorf("the file has more than %d mailboxes; split it into several files", maxRows)
		}
		row, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			// The values cannot be trusted to sit under the right column, so
			// the row is not checked further.
			errs = append(errs, RowError{Row: row,
				Message: fmt.Sprintf("the line has %d values but the header has %d; check for a missing or extra %s (a value that contains a %s must be in double quotes)", len(rec), len(header), delimName, delimName)})
			continue
		}
		before := len(errs)
		for i, f := range rec {
			if unnamed[i] && strings.TrimSpace(f) != "" {
				errs = append(errs, RowError{Row: row,
					Message: fmt.Sprintf("there is a value in column %d, which has no name in the header", i+1)})
			}
		}
		get := func(k int) string {
			if pos[k] < 0 {
				return ""
			}
			return rec[pos[k]]
		}
		in := MailboxInput{
			SourceEmail:    strings.TrimSpace(get(colSourceEmail)),
			SourceLogin:    strings.TrimSpace(get(colSourceLogin)),
			SourcePassword: get(colSourcePassword),
			DestEmail:      strings.TrimSpace(get(colDestEmail)),
			DestLogin:      strings.TrimSpace(get(colDestLogin)),
			DestPassword:   get(colDestPassword),
			Flags:          get(colFlags),
		}
		if isTemplateExample(in) {
			// The template's example row would otherwise import as
			// a mailbox that cannot exist (and fail every pass).
			errs = append(errs, RowError{Row: row, Message: fmt.Sprintf("this is the example row of the template (%s), not a mailbox: "+
				"delete this line and put one line per mailbox to move below the header", exampleSourceEmail)})
			continue
		}
		emailsOK := true
		checkEmail := func(k int, v string) {
			if pos[k] < 0 {
				emailsOK = false
				return
			}
			msg := ""
			switch {
			case v == "":
				msg = "the email address is missing"
			case !validEmail(v):
				// The value is not quoted: the row and column say
				// where it is, and it may be a password in the wrong
				// column.
				msg = "this is not a valid email address; it looks like name@company.com"
			default:
				return
			}
			emailsOK = false
			errs = append(errs, RowError{Row: row, Column: columnNames[pos[k]], Message: msg})
		}
		noPasswords := strings.TrimSpace(in.SourcePassword) == "" && strings.TrimSpace(in.DestPassword) == ""
		checkPassword := func(k int, v string) {
			// A missing column is already reported once on the header.
			switch {
			case adminSide[k] && v != "":
				errs = append(errs, RowError{Row: row, Column: columnNames[pos[k]],
					Message: "this side is " + adminHow(adminKinds[k]) + ": leave the password empty (the address is enough)"})
			case !adminSide[k] && pos[k] >= 0 && strings.TrimSpace(v) == "":
				msg := "the password is missing; to have this mailbox's user enter their own passwords, " +
					"upload the file again with \"My users will enter their own passwords\" ticked (addresses only are then enough)"
				if askUsers {
					msg = "the password is missing: give both passwords, or leave both empty for the user to enter them"
				}
				errs = append(errs, RowError{Row: row, Column: columnNames[pos[k]], Message: msg})
			}
		}
		// With askUsers, a row with neither password is the user's to
		// complete (AskUser).
		in.AskUser = askUsers && noPasswords
		if in.AskUser {
			checkPassword = func(int, string) {}
		}
		checkEmail(colSourceEmail, in.SourceEmail)
		checkPassword(colSourcePassword, in.SourcePassword)
		checkEmail(colDestEmail, in.DestEmail)
		checkPassword(colDestPassword, in.DestPassword)

		if emailsOK {
			key := strings.ToLower(in.SourceEmail) + "\x00" + strings.ToLower(in.DestEmail)
			if first, dup := seen[key]; dup {
				errs = append(errs, RowError{Row: row,
					Message: fmt.Sprintf("duplicates row %d (same source %s and destination %s)", first, in.SourceEmail, in.DestEmail)})
			} else {
				seen[key] = row
			}
		}
		if len(errs) > before {
			continue
		}
		// The seed's users mostly log in with the full address, so an empty
		// login means exactly that.
		if in.SourceLogin == "" {
			in.SourceLogin = in.SourceEmail
		}
		if in.DestLogin == "" {
			in.DestLogin = in.DestEmail
		}
		out = append(out, in)
	}

	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b RowError) int { return a.Row - b.Row })
		return nil, errs, nil
	}
	if len(out) == 0 {
		return nil, nil, ErrEmptyCSV
	}
	return out, nil, nil
}

// MailboxExportRow is one line of the status export. It has no password
// fields on purpose.
type MailboxExportRow struct {
	SourceEmail, SourceLogin, DestEmail, DestLogin string
	Status                                         string // e.g. "Completed with errors"
	StatusAt                                       time.Time
	ErrorClass                                     string
	LastError                                      string
	Passes                                         int
	Copied, Present, Failed                        int64
	BytesCopied                                    int64
	Duration                                       time.Duration
}

// WriteMailboxCSV writes a header then one line per row; times RFC 3339 in
// UTC (empty when unset), duration in seconds with 1 decimal. Text cells that
// start with = + - @ (or tab/CR) get a leading apostrophe, because the file
// is meant to be opened in a spreadsheet and server error texts and
// addresses are not under our control.
func WriteMailboxCSV(w io.Writer, rows []MailboxExportRow) error {
	text := func(s string) string {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			return "'" + s
		}
		return s
	}
	cw := csv.NewWriter(w)
	// Spreadsheet programs on Windows expect CRLF; RFC 4180 does too.
	cw.UseCRLF = true
	if err := cw.Write([]string{
		"Source Email", "Source Login Name", "Destination Email", "Destination Login Name",
		"Status", "Status Time (UTC)", "Error Class", "Last Error", "Passes",
		"Items Copied", "Items Already Present", "Items Failed", "Bytes Copied", "Duration (s)",
	}); err != nil {
		return err
	}
	for _, r := range rows {
		at := ""
		if !r.StatusAt.IsZero() {
			at = r.StatusAt.UTC().Format(time.RFC3339)
		}
		// Numbers are formatted by us and cannot carry a formula, so only
		// text cells are neutralised.
		if err := cw.Write([]string{
			text(r.SourceEmail), text(r.SourceLogin), text(r.DestEmail), text(r.DestLogin),
			text(r.Status), at, text(r.ErrorClass), text(r.LastError),
			strconv.Itoa(r.Passes),
			strconv.FormatInt(r.Copied, 10), strconv.FormatInt(r.Present, 10), strconv.FormatInt(r.Failed, 10),
			strconv.FormatInt(r.BytesCopied, 10),
			strconv.FormatFloat(r.Duration.Seconds(), 'f', 1, 64),
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// The template's example row. An import refuses it, by its addresses or by
// its placeholder passwords, so that it is never taken for a mailbox.
const (
	exampleSourceEmail = "alice@example.com"
	exampleDestEmail   = "alice@example.com"
	exampleSourcePass  = "source-password"
	exampleDestPass    = "destination-password"
)

func isTemplateExample(in MailboxInput) bool {
	return (strings.EqualFold(strings.TrimSpace(in.SourceEmail), exampleSourceEmail) && strings.EqualFold(strings.TrimSpace(in.DestEmail), exampleDestEmail)) ||
		(in.SourcePassword == exampleSourcePass && in.DestPassword == exampleDestPass)
}

// MailboxCSVTemplate returns the downloadable template: MigrationWiz's full
// header and one example row with example.com addresses, which an import
// refuses with a row error (it is not a mailbox).
func MailboxCSVTemplate() []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	// Writes to a bytes.Buffer cannot fail.
	_ = cw.WriteAll([][]string{
		{"Source Email", "Source Login Name", "Source Password", "Destination Email", "Destination Login Name", "Destination Password", "Flags"},
		{exampleSourceEmail, exampleSourceEmail, exampleSourcePass, exampleDestEmail, exampleDestEmail, exampleDestPass, ""},
	})
	return b.Bytes()
}
