package verify

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/go-pdf/fpdf"

	"github.com/mailferry/mailferry/internal/accounting"
	"github.com/mailferry/mailferry/internal/migrate"
)

// column is one of the report's per-folder columns.
type column struct {
	head string
	get  func(*Folder) string
}

// columns are the table's and the PDF's columns, in their order (a
// function, not a package variable: no package-level mutable state).
func columns() []column {
	return []column{
		{"SOURCE FOLDER", func(f *Folder) string { return f.Source }},
		{"DESTINATION", func(f *Folder) string { return destText(f) }},
		{"WHY", whyText},
		{"SRC MSGS", func(f *Folder) string { return n(f.SourceMessages) }},
		{"SRC BYTES", func(f *Folder) string { return accounting.HumanBytes(f.SourceBytes) }},
		{"DST MSGS", func(f *Folder) string { return n(f.DestMessages) }},
		{"EXACT", func(f *Folder) string { return n(f.Exact) }},
		{"FLAGS/DATE", func(f *Folder) string { return differsText(f) }},
		{"ALTERED", func(f *Folder) string { return n(f.Altered + f.Unread) }},
		{"EQUIV", func(f *Folder) string { return n(f.Equivalent) }},
		{"MISSING", func(f *Folder) string { return n(f.Missing) }},
		{"FAILED", func(f *Folder) string { return n(f.FailedEarlier) }},
		{"EXTRA", func(f *Folder) string { return n(f.Extra) }},
		{"SKIPPED", func(f *Folder) string { return n(f.Skipped) }},
	}
}

func n(v int64) string { return strconv.FormatInt(v, 10) }

func destText(f *Folder) string {
	switch {
	case f.Class != "":
		return "-"
	case f.DestMissing:
		return f.Dest + " (does not exist)"
	}
	return f.Dest
}

// whyText is the plan's reason, saying when a rule given now differs
// from the one the copy recorded.
func whyText(f *Folder) string {
	if f.Plan == migrate.PlanRuleChanged {
		return f.Why + " (rule changed since the copy)"
	}
	return f.Why
}

func differsText(f *Folder) string {
	if f.Differs == 0 {
		return "0"
	}
	var w []string
	if f.FlagsDiffer > 0 {
		w = append(w, n(f.FlagsDiffer)+" flags")
	}
	if f.DateDiffer > 0 {
		w = append(w, n(f.DateDiffer)+" date")
	}
	return n(f.Differs) + " (" + strings.Join(w, ", ") + ")"
}

func (r *Report) totalsRow() *Folder {
	t := r.Totals
	return &Folder{Source: "TOTAL", Dest: "", SourceMessages: t.SourceMessages, SourceBytes: t.SourceBytes, DestMessages: t.DestMessages,
		Exact: t.Exact, Differs: t.Differs, FlagsDiffer: sumOf(r, func(f *Folder) int64 { return f.FlagsDiffer }),
		DateDiffer: sumOf(r, func(f *Folder) int64 { return f.DateDiffer }), Altered: t.Altered, Unread: t.Unread,
		Equivalent: t.Equivalent, Missing: t.Missing, FailedEarlier: t.FailedEarlier, Extra: t.Extra, Skipped: t.Skipped}
}

func sumOf(r *Report, get func(*Folder) int64) (s int64) {
	for _, f := range r.Folders {
		s += get(f)
	}
	return s
}

// WriteText writes the report as a table for a terminal, then the
// differences and the verdict.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Verification of %s against %s\n", r.Destination, r.Source)
	fmt.Fprintf(w, "%s %s, %s to %s (%s), bytes compared by %s\n\n", r.Tool, r.Version,
		r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("15:04:05Z"), r.Finished.Sub(r.Started).Round(1e7), r.Bytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(f *Folder) {
		for i, c := range columns() {
			v := c.get(f)
			if i < 3 {
				v = truncate(v, 30)
			}
			fmt.Fprint(tw, v, "\t")
		}
		fmt.Fprintln(tw)
	}
	for _, c := range columns() {
		fmt.Fprint(tw, c.head, "\t")
	}
	fmt.Fprintln(tw)
	for _, f := range r.Folders {
		row(f)
	}
	row(r.totalsRow())
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Folders {
		if f.Error != "" {
			fmt.Fprintf(w, "\n%s: NOT COMPARED: %s", f.Source, f.Error)
		}
	}
	if len(r.Differences) > 0 {
		fmt.Fprintln(w, "\nDifferences:")
		for _, d := range r.Differences {
			fmt.Fprintf(w, "  %-14s %s %s: %s\n", d.Kind, d.Folder, idText(d), d.Detail)
		}
		if r.DifferencesLeft > 0 {
			fmt.Fprintf(w, "  … and %d more (see --json)\n", r.DifferencesLeft)
		}
	}
	fmt.Fprintf(w, "\n%s\nReport SHA-256: %s\n", r.Verdict, r.SHA256)
	return nil
}

func idText(d Difference) string {
	switch {
	case d.ID != "" && d.DestID != "":
		return "id " + d.ID + " (destination " + d.DestID + ")"
	case d.ID != "":
		return "id " + d.ID
	case d.DestID != "":
		return "destination id " + d.DestID
	}
	return ""
}

func truncate(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}

// WriteJSON writes the whole report, sealed, as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteCSV writes one row per folder (raw numbers), a TOTAL row, then
// the verdict and the report's SHA-256 as two rows of their own.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"source_folder", "destination_folder", "why", "source_messages", "source_bytes", "destination_messages",
		"matched", "matched_exact", "matched_other_flags_or_date", "flags_differ", "date_differs", "altered", "unread",
		"content_equivalent", "missing", "failed_earlier", "extra", "skipped_by_filter", "error"}
	if err := cw.Write(head); err != nil {
		return err
	}
	rows := append(append([]*Folder(nil), r.Folders...), r.totalsRow())
	rows[len(rows)-1].Matched = r.Totals.Matched
	for _, f := range rows {
		rec := []string{f.Source, destText(f), whyText(f), n(f.SourceMessages), n(f.SourceBytes), n(f.DestMessages),
			n(f.Matched), n(f.Exact), n(f.Differs), n(f.FlagsDiffer), n(f.DateDiffer), n(f.Altered), n(f.Unread),
			n(f.Equivalent), n(f.Missing), n(f.FailedEarlier), n(f.Extra), n(f.Skipped), f.Error}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	if err := cw.Write([]string{"verdict", r.Verdict}); err != nil {
		return err
	}
	if err := cw.Write([]string{"report_sha256", r.SHA256}); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// WritePDF writes the report as a PDF (A4 landscape): the header with
// tool, addresses, settings and times, the folder table, the verdict, the
// differences, and the report's SHA-256 on every page.
//
// The PDF's core fonts cover Windows-1252; other characters of folder
// names are shown as '?' (the JSON form has them exactly).
func (r *Report) WritePDF(w io.Writer) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetTitle("Mailferry proof of migration", true)
	pdf.SetCreator(r.Tool+" "+r.Version, true)
	pdf.SetCreationDate(r.Finished)
	pdf.SetModificationDate(r.Finished)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 7)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("Report SHA-256 %s  -  page %d", r.SHA256, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.SetAutoPageBreak(true, 15)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 15)
	pdf.CellFormat(0, 8, "Proof of migration", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	line := func(label, v string) {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(32, 5, tr(label), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.CellFormat(0, 5, tr(v), "", 1, "L", false, 0, "")
	}
	line("Source", r.Source)
	line("Destination", r.Destination)
	line("Tool", r.Tool+" "+r.Version)
	line("Run", fmt.Sprintf("%s to %s (UTC)", r.Started.Format("2006-01-02 15:04:05"), r.Finished.Format("2006-01-02 15:04:05")))
	line("Bytes compared", r.Bytes)
	line("Settings", settingsText(r.Settings))
	pdf.Ln(2)
	// The verdict, in a box that says at a glance what it is.
	if r.Exact {
		pdf.SetFillColor(214, 240, 214)
	} else {
		pdf.SetFillColor(248, 215, 210)
	}
	pdf.SetFont("Helvetica", "B", 10)
	pdf.MultiCell(0, 6, tr(r.Verdict), "1", "L", true)
	pdf.Ln(3)

	widths := []float64{36, 36, 46, 14, 16, 14, 13, 19, 14, 12, 14, 12, 11, 13} // 270 of 277 mm
	heads := []string{"Source folder", "Destination", "Why", "Src msgs", "Src bytes", "Dst msgs", "Exact", "Flags/date", "Altered", "Equiv.", "Missing", "Failed", "Extra", "Skipped"}
	header := func() {
		pdf.SetFont("Helvetica", "B", 7.5)
		pdf.SetFillColor(230, 230, 230)
		for i, h := range heads {
			pdf.CellFormat(widths[i], 6, h, "1", 0, align(i), true, 0, "")
		}
		pdf.Ln(-1)
	}
	header()
	row := func(f *Folder, bold bool) {
		if pdf.GetY() > 185 {
			pdf.AddPage()
			header()
		}
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 7.5)
		for i, c := range columns() {
			v := c.get(f)
			if i < 3 {
				v = fitText(pdf, tr(v), widths[i]-2)
			}
			pdf.CellFormat(widths[i], 5.5, v, "1", 0, align(i), false, 0, "")
		}
		pdf.Ln(-1)
	}
	for _, f := range r.Folders {
		row(f, false)
	}
	row(r.totalsRow(), true)
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "", 7.5)
	pdf.MultiCell(0, 4, tr("Source messages = matched (exact + other flags/date + altered + content-equivalent) + missing + skipped by a filter. "+
		"Failed counts the missing messages an earlier pass reported as failed. Extra are destination copies no source message accounts for."), "", "L", false)
	for _, f := range r.Folders {
		if f.Error != "" {
			pdf.MultiCell(0, 4, tr(f.Source+": not compared: "+f.Error), "", "L", false)
		}
	}
	if len(r.Differences) > 0 {
		pdf.Ln(2)
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(0, 6, "Differences", "", 1, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 7.5)
		for _, d := range r.Differences {
			pdf.MultiCell(0, 4, tr(fmt.Sprintf("%s - %s %s: %s", d.Kind, d.Folder, idText(d), d.Detail)), "", "L", false)
		}
		if r.DifferencesLeft > 0 {
			pdf.MultiCell(0, 4, fmt.Sprintf("... and %d more (see the JSON report)", r.DifferencesLeft), "", "L", false)
		}
	}
	return pdf.Output(w)
}

func align(col int) string {
	if col < 3 {
		return "L"
	}
	return "R"
}

// fitText shortens s until it fits into width.
func fitText(pdf *fpdf.Fpdf, s string, width float64) string {
	if pdf.GetStringWidth(s) <= width {
		return s
	}
	for len(s) > 1 && pdf.GetStringWidth(s+"...") > width {
		s = s[:len(s)-1]
	}
	return s + "..."
}

func settingsText(s Settings) string {
	var w []string
	for _, x := range s.Include {
		w = append(w, "--include "+x)
	}
	for _, x := range s.Exclude {
		w = append(w, "--exclude "+x)
	}
	for _, x := range s.Map {
		w = append(w, "--map "+x)
	}
	if s.Since != "" {
		w = append(w, "--since "+s.Since)
	}
	if s.Before != "" {
		w = append(w, "--before "+s.Before)
	}
	if s.IncludeDeleted {
		w = append(w, "--include-deleted")
	}
	if s.RecordedPlan {
		w = append(w, "folder plan recorded by earlier passes")
	} else {
		w = append(w, "folder plan decided afresh (no recorded plan)")
	}
	return strings.Join(w, ", ")
}
