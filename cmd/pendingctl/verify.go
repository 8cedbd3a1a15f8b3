package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

func verifyCommand() command {
	return command{
		name:    "verify",
		summary: "check every line of every store file; exit 1 if any is damaged (read-only)",
		usage: `
Reads every line of the pending files (sealed segments and the active file)
and of the dead-letter file, and prints each damaged line as

  FILE:LINE: offset OFFSET, N bytes: REASON

(never its content), then a summary. The quarantine file holds lines already
set aside, so its lines are counted, not reported. Exits 1 when any line is
damaged; "pendingctl repair", with the daemon stopped, moves them to the
quarantine file. Read-only and lock-free: safe while the daemon runs, though
a record being appended at that very moment shows up as a torn tail.

A file beside the store named like one of its segments (FILE.seg.*) that is
not one (its name does not parse, or it is not a regular file) is reported as

  FILE: not read by the store: REASON

and counts as a problem: the store never reads it, so records in it are not
delivered. Move it aside, or rename it if you know where it came from.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				return verifyStore(path, jsonl.ScanConfig{MaxPayloadBytes: *maxPayload}, stdout, stderr)
			}
		},
	}
}

func verifyStore(path string, cfg jsonl.ScanConfig, stdout, stderr io.Writer) int {
	l, err := storeLayout(path, cfg)
	if err != nil {
		return fail(stderr, "verify", err)
	}
	var records, legacy, problems, quarantined int64
	files := recordFiles(l)
	marks := settledMarks(path) // delivered lines are no longer the store's
	for _, file := range files {
		err := scanPending(file, marks, cfg, func(e jsonl.ScanEntry) error {
			if e.Problem == jsonl.ProblemNone {
				records++
				if e.Legacy {
					legacy++
				}
				return nil
			}
			problems++
			reason := e.Problem.String()
			if e.Problem != jsonl.ProblemTornTail {
				if nul, err := isNULRun(file, e.Offset, e.Length); err == nil && nul {
					reason += " (only NUL bytes, as power loss can leave)"
				}
			}
			_, err := fmt.Fprintf(stdout, "%s:%d: offset %d, %d bytes: %s\n", file, e.Line, e.Offset, e.Length, reason)
			return err
		})
		if err != nil {
			return fail(stderr, "verify", err)
		}
	}
	for _, p := range l.Unrecognized {
		problems++
		reason := "named like a segment, but the name does not parse as one"
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			reason = "named like a segment, but not a regular file"
		}
		if _, err := fmt.Fprintf(stdout, "%s: not read by the store: %s\n", p, reason); err != nil {
			return fail(stderr, "verify", err)
		}
	}
	if l.Quarantine != "" {
		files = append(files, l.Quarantine)
		err := scanFile(l.Quarantine, cfg, func(jsonl.ScanEntry) error {
			quarantined++
			return nil
		})
		if err != nil {
			return fail(stderr, "verify", err)
		}
	}
	fmt.Fprintf(stdout, "checked %s: %s (%d legacy), %s\n",
		plural(int64(len(files)), "file"), plural(records, "record"), legacy, plural(problems-int64(len(l.Unrecognized)), "damaged line"))
	if n := len(l.Unrecognized); n > 0 {
		fmt.Fprintf(stdout, "%s named like segments not read by the store\n", plural(int64(n), "file"))
	}
	if quarantined > 0 {
		fmt.Fprintf(stdout, "note: %s already set aside in %s\n", plural(quarantined, "line"), l.Quarantine)
	}
	if n := len(l.Superseded) + len(l.Temp); n > 0 {
		fmt.Fprintf(stdout, "note: %s of a running or interrupted replay; the next open removes them\n", plural(int64(n), "leftover file"))
	}
	if problems > int64(len(l.Unrecognized)) {
		fmt.Fprintln(stdout, "stop the daemon and run pendingctl repair to move the damaged lines to the quarantine file")
	}
	if problems > 0 {
		return exitProblems
	}
	return exitOK
}
