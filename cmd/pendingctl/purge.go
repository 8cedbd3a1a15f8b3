package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

func purgeCommand() command {
	return command{
		name:    "purge",
		summary: "remove every record the store holds (asks for --yes)",
		usage: `
Removes every record of the store at FILE: the pending records (FILE is
emptied, its segments removed), the dead-letter file (FILE.dead) and the
quarantine file (FILE.quarantine). This is the way to get rid of something
that must not be sent, a secret typed into the shell say: deleting FILE
while the daemon runs does not work, since the daemon restores it from the
file it holds open. The files' blocks are freed, not overwritten.

Refuses (exit 3) while another process holds the store: stop the daemon
first, or have it call JSONLStore.Purge itself.`,
		setup: func(fs *flag.FlagSet) func(string, io.Writer, io.Writer) int {
			maxPayload := maxPayloadFlag(fs)
			yes := fs.Bool("yes", false, "really remove every record")
			return func(path string, stdout, stderr io.Writer) int {
				if !*yes {
					fmt.Fprintln(stderr, "pendingctl purge: removes every record for good; run it again with --yes")
					return exitUsage
				}
				s, code := openForWrite("purge", path, *maxPayload, stderr)
				if s == nil {
					return code
				}
				res, err := s.Purge(context.Background())
				if err != nil {
					return fail(stderr, "purge", errors.Join(err, s.Close()))
				}
				if err := s.Close(); err != nil {
					return fail(stderr, "purge", err)
				}
				fmt.Fprintf(stdout, "purged %s", plural(res.Pending, "pending record"))
				if res.DeadLettered {
					fmt.Fprint(stdout, ", the dead-letter file")
				}
				if res.Quarantined {
					fmt.Fprint(stdout, ", the quarantine file")
				}
				fmt.Fprintln(stdout)
				return exitOK
			}
		},
	}
}
