package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

func exportLegacyCommand() command {
	return command{
		name:    "export-legacy",
		summary: "write what is pending back into FILE, one payload a line, for a downgrade (daemon stopped)",
		usage: `
Before rolling a daemon back to a release from before syncbreaker (one that
reads FILE one line at a time and posts each line), run this with the daemon
stopped. It writes every pending record's payload into FILE, one JSON
payload a line (compacted onto one line: the same JSON), which the old
release posts as it always did, and removes the segments they came from.
Records already delivered are not written.

What the old release would post wrongly stays in the store, as records in
one segment beside FILE (FILE.seg.*), which it never reads and an upgraded
daemon delivers again: payloads that are not JSON (the old release only ever
wrote JSON, and a raw payload may hold a newline), payloads whose line would
be 64 KiB or longer (the old reader fails on such a line, and on every retry
after it), and damaged lines. The dead-letter and quarantine files are left
as they are (run requeue-dead first to export dead letters too).

Exits 0 when everything pending was written, 1 when some records stayed in
the store (listed by count); refuses (exit 3) while another process holds
the store. A crash in the middle may leave a payload both in FILE and in a
segment: an upgraded daemon then sends it twice, never zero times.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				if _, err := storeLayout(path, jsonl.ScanConfig{MaxPayloadBytes: *maxPayload}); err != nil {
					return fail(stderr, "export-legacy", err)
				}
				rep, err := jsonl.ExportLegacy(path, jsonl.Config{MaxBytes: -1, MaxPayloadBytes: *maxPayload})
				if err != nil {
					if !errors.Is(err, syncbreaker.ErrStoreLocked) {
						err = fmt.Errorf("export: %w", err)
					}
					return fail(stderr, "export-legacy", err)
				}
				fmt.Fprintf(stdout, "wrote %s to %s, one a line\n", plural(int64(rep.Exported), "payload"), path)
				if rep.Kept() == 0 {
					return exitOK
				}
				fmt.Fprintf(stdout, "kept in %s, not readable by a release from before syncbreaker: %d not JSON, %d too long (64 KiB or more), %d damaged\n",
					rep.Segment, rep.KeptNotJSON, rep.KeptTooLong, rep.KeptDamaged)
				return exitProblems
			}
		},
	}
}
