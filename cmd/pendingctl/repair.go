package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

func repairCommand() command {
	return command{
		name:    "repair",
		summary: "open the store once so it repairs itself, and say what it did",
		usage: `
Opens the store exactly as the daemon does, which repairs it: a torn last
line is cut, damaged lines of pending files are moved to the quarantine file
(FILE.quarantine, byte for byte: nothing is deleted), lines written by the
original implementation are rewritten as records, and leftovers of an
interrupted replay are removed. Then it prints what was done and closes the
store. Damaged lines in the dead-letter file are left alone; requeue-dead
quarantines them.

Refuses (exit 3) while another process holds the store: stop the daemon
first. Refuses (exit 4) when FILE does not exist or holds no record at all
(most likely a wrong path), rather than quarantine a foreign file.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				s, code := openForWrite("repair", path, *maxPayload, stderr)
				if s == nil {
					return code
				}
				rep := s.RepairReport()
				writeRepair(stdout, rep, s.QuarantinePath())
				if err := s.Close(); err != nil {
					return fail(stderr, "repair", err)
				}
				return exitOK
			}
		},
	}
}

// openForWrite opens the store at path for a command that changes it,
// after checking that there is a store there (opening would create one)
// and that it is not some other file. On failure it reports and returns a
// nil store and the exit code.
func openForWrite(name, path string, maxPayload int, stderr io.Writer) (*jsonl.Store, int) {
	cfg := jsonl.ScanConfig{MaxPayloadBytes: maxPayload}
	if _, err := storeLayout(path, cfg); err != nil {
		return nil, fail(stderr, name, err)
	}
	// No size limit: this open only repairs and requeues, and a daemon
	// with a larger MaxBytes must not find its records refused.
	// CheckAll: repair reads every line, including those of files the
	// store's ledger counts without reading.
	s, err := jsonl.Open(path, jsonl.Config{MaxBytes: -1, MaxPayloadBytes: maxPayload, CheckAll: true})
	if err != nil {
		if !errors.Is(err, syncbreaker.ErrStoreLocked) {
			err = fmt.Errorf("open store: %w", err)
		}
		return nil, fail(stderr, name, err)
	}
	return s, exitOK
}

// writeRepair says what opening the store repaired.
func writeRepair(w io.Writer, rep syncbreaker.RepairReport, quarantine string) {
	if rep.Clean() {
		fmt.Fprintln(w, "nothing to repair: every line of every pending file is a record")
		return
	}
	for _, f := range rep.Files {
		fmt.Fprintf(w, "repaired %s:\n", f.Path)
		if f.TornBytes > 0 {
			fmt.Fprintf(w, "  cut a torn last line (%s, an interrupted write)\n", plural(f.TornBytes, "byte"))
		}
		if f.Quarantined > 0 {
			fmt.Fprintf(w, "  moved %s (%s) to %s\n", plural(int64(f.Quarantined), "damaged line"), plural(f.QuarantinedBytes, "byte"), quarantine)
		}
		if f.LegacyRewritten > 0 {
			fmt.Fprintf(w, "  rewrote %s of the original implementation as records\n", plural(int64(f.LegacyRewritten), "legacy line"))
		}
	}
	for _, p := range rep.RemovedTemp {
		fmt.Fprintf(w, "removed %s (temp file of an interrupted rewrite; its source is intact)\n", p)
	}
	for _, p := range rep.RemovedSuperseded {
		fmt.Fprintf(w, "removed %s (segment an interrupted replay had already replaced)\n", p)
	}
}
