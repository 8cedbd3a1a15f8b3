package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

func statCommand() command {
	return command{
		name:    "stat",
		summary: "count pending, dead-lettered and quarantined records (read-only)",
		usage: `
Shows what the store holds: pending records and bytes, the oldest and newest
enqueue time, how many records have failed how many republish attempts,
dead-lettered records, quarantined lines, damaged lines still in pending
files, and the files that make up the store. Read-only and lock-free: safe
while the daemon runs (a record being appended at that moment may show up
as one damaged line).`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			asJSON := fs.Bool("json", false, "print one JSON object instead of text")
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				rep, err := statStore(path, jsonl.ScanConfig{MaxPayloadBytes: *maxPayload})
				if err != nil {
					return fail(stderr, "stat", err)
				}
				if *asJSON {
					err = writeJSON(stdout, rep)
				} else {
					err = rep.writeText(stdout)
				}
				if err != nil {
					return fail(stderr, "stat", err)
				}
				return exitOK
			}
		},
	}
}

// statReport is stat's output; its JSON form is the --json schema.
type statReport struct {
	Path       string     `json:"path"`
	Files      statFiles  `json:"files"`
	Pending    recordStat `json:"pending"`
	Dead       recordStat `json:"dead"`
	Quarantine struct {
		Lines int64 `json:"lines"`
		Bytes int64 `json:"bytes"`
	} `json:"quarantine"`
}

type statFiles struct {
	Active     string   `json:"active,omitempty"`
	Segments   []string `json:"segments"`
	Dead       string   `json:"dead,omitempty"`
	Quarantine string   `json:"quarantine,omitempty"`
	// Leftovers of a replay the daemon was running, or that a crash
	// interrupted; the next open deletes them. Not counted.
	Superseded []string `json:"superseded,omitempty"`
	Temp       []string `json:"temp,omitempty"`
}

type recordStat struct {
	Records      int64          `json:"records"`
	Bytes        int64          `json:"bytes"`
	Legacy       int64          `json:"legacy_records"` // written by the original implementation
	DamagedLines int64          `json:"damaged_lines"`  // see pendingctl verify
	Oldest       *time.Time     `json:"oldest_enqueued_at"`
	Newest       *time.Time     `json:"newest_enqueued_at"`
	Attempts     []attemptCount `json:"attempts"` // by attempt count, ascending
}

type attemptCount struct {
	Attempts int   `json:"attempts"`
	Records  int64 `json:"records"`
}

func statStore(path string, cfg jsonl.ScanConfig) (*statReport, error) {
	l, err := storeLayout(path, cfg)
	if err != nil {
		return nil, err
	}
	rep := &statReport{Path: path, Files: statFiles{
		Active: l.Active, Segments: l.Segments, Dead: l.Dead, Quarantine: l.Quarantine,
		Superseded: l.Superseded, Temp: l.Temp,
	}}
	if rep.Files.Segments == nil {
		rep.Files.Segments = []string{}
	}
	if err := tallyRecords(pendingFiles(l), settledMarks(path), cfg, &rep.Pending); err != nil {
		return nil, err
	}
	var dead []string
	if l.Dead != "" {
		dead = []string{l.Dead}
	}
	if err := tallyRecords(dead, jsonl.Delivered{}, cfg, &rep.Dead); err != nil {
		return nil, err
	}
	if l.Quarantine != "" {
		err := scanFile(l.Quarantine, cfg, func(e jsonl.ScanEntry) error {
			rep.Quarantine.Lines++
			rep.Quarantine.Bytes += e.Length
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// tallyRecords adds what files hold to st, one streaming pass each,
// leaving out what the ledger marks as delivered.
func tallyRecords(files []string, marks jsonl.Delivered, cfg jsonl.ScanConfig, st *recordStat) error {
	hist := map[int]int64{}
	var oldest, newest time.Time
	for _, path := range files {
		err := scanPending(path, marks, cfg, func(e jsonl.ScanEntry) error {
			st.Bytes += e.Length
			if e.Problem != jsonl.ProblemNone {
				st.DamagedLines++
				return nil
			}
			st.Records++
			if e.Legacy {
				st.Legacy++
			}
			hist[e.Record.Attempts]++
			t := e.Record.EnqueuedAt
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
			if t.After(newest) {
				newest = t
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if st.Records > 0 {
		st.Oldest, st.Newest = &oldest, &newest
	}
	st.Attempts = []attemptCount{}
	for _, a := range slices.Sorted(maps.Keys(hist)) {
		st.Attempts = append(st.Attempts, attemptCount{Attempts: a, Records: hist[a]})
	}
	return nil
}

func (r *statReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "store        %s\n", r.Path)
	b.WriteString("files        " + r.Files.describe() + "\n")
	fmt.Fprintf(&b, "pending      %s\n", r.Pending.describe())
	r.Pending.writeDetails(&b)
	fmt.Fprintf(&b, "dead-letter  %s\n", r.Dead.describe())
	r.Dead.writeDetails(&b)
	if r.Dead.Records > 0 {
		b.WriteString("             (pendingctl requeue-dead moves them back to pending)\n")
	}
	fmt.Fprintf(&b, "quarantine   %s, %s\n", plural(r.Quarantine.Lines, "line"), sizeString(r.Quarantine.Bytes))
	if r.Quarantine.Lines > 0 {
		b.WriteString("             (unreadable lines set aside; pendingctl cat --quarantine)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (f statFiles) describe() string {
	var parts []string
	if f.Active != "" {
		parts = append(parts, "active")
	} else {
		parts = append(parts, "no active file")
	}
	if n := len(f.Segments); n > 0 {
		parts = append(parts, plural(int64(n), "sealed segment"))
	}
	if f.Dead != "" {
		parts = append(parts, "dead-letter")
	}
	if f.Quarantine != "" {
		parts = append(parts, "quarantine")
	}
	if n := len(f.Superseded) + len(f.Temp); n > 0 {
		parts = append(parts, plural(int64(n), "replay leftover")+" (removed at next open)")
	}
	return strings.Join(parts, ", ")
}

func (s recordStat) describe() string {
	return fmt.Sprintf("%s, %s", plural(s.Records, "record"), sizeString(s.Bytes))
}

func (s recordStat) writeDetails(b *strings.Builder) {
	if s.Oldest != nil {
		fmt.Fprintf(b, "  oldest     %s\n", s.Oldest.Local().Format(time.RFC3339))
		fmt.Fprintf(b, "  newest     %s\n", s.Newest.Local().Format(time.RFC3339))
	}
	if len(s.Attempts) > 0 {
		b.WriteString("  attempts  ")
		for _, a := range s.Attempts {
			fmt.Fprintf(b, " %d:%d", a.Attempts, a.Records)
		}
		b.WriteString("  (failed republish attempts:records)\n")
	}
	if s.Legacy > 0 {
		fmt.Fprintf(b, "  legacy     %s written by the original implementation\n", plural(s.Legacy, "record"))
	}
	if s.DamagedLines > 0 {
		fmt.Fprintf(b, "  damaged    %s (pendingctl verify lists them)\n", plural(s.DamagedLines, "line"))
	}
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return plural(n, "byte")
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTP"[exp], n)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
