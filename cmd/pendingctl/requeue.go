package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

func requeueCommand() command {
	return command{
		name:    "requeue-dead",
		summary: "move dead-lettered records back to pending",
		usage: `
Moves every record of the dead-letter file (FILE.dead: records that reached
the daemon's MaxAttempts) back to pending with its attempt count reset and
its id kept; the daemon republishes them at its next retry. Damaged lines of
the dead-letter file go to the quarantine file. Opening the store also
repairs it, as "pendingctl repair" does, and says so.

The records are written and fsynced as pending before the dead-letter file
is deleted: if this is interrupted, they may be in both places (republished
twice, with the same id), never lost.

Refuses (exit 3) while another process holds the store: stop the daemon
first.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			maxPayload := maxPayloadFlag(fs)
			return func(path string, stdout, stderr io.Writer) int {
				s, code := openForWrite("requeue-dead", path, *maxPayload, stderr)
				if s == nil {
					return code
				}
				if rep := s.RepairReport(); !rep.Clean() {
					writeRepair(stdout, rep, s.QuarantinePath())
				}
				before := s.Stats().Quarantined
				n, err := s.RequeueDead(context.Background())
				if err != nil {
					return fail(stderr, "requeue-dead", errors.Join(err, s.Close()))
				}
				quarantined := s.Stats().Quarantined - before
				if err := s.Close(); err != nil {
					return fail(stderr, "requeue-dead", err)
				}
				fmt.Fprintf(stdout, "moved %s back to pending\n", plural(int64(n), "dead-lettered record"))
				if quarantined > 0 {
					fmt.Fprintf(stdout, "moved %s of the dead-letter file to %s\n", plural(quarantined, "damaged line"), s.QuarantinePath())
				}
				return exitOK
			}
		},
	}
}
