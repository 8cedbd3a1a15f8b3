package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/syncbreaker/syncbreaker"
)

// Exit codes, documented in usage and doc.go.
const (
	exitOK       = 0 // done; nothing wrong found
	exitProblems = 1 // damaged lines found (verify), or skipped (cat)
	exitUsage    = 2 // bad command line
	exitLocked   = 3 // another process holds the store
	exitError    = 4 // missing file, not a store, I/O or any other error
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its flags are registered on fs by setup, and
// exec runs it on the store path once the command line has parsed.
type command struct {
	name    string
	summary string
	usage   string // the text after "Usage: pendingctl NAME [flags] FILE"
	setup   func(fs *flag.FlagSet) func(path string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{statCommand(), verifyCommand(), catCommand(), repairCommand(), requeueCommand(), purgeCommand(), exportLegacyCommand()}
}

const exitCodesHelp = `Exit codes:
  0  ok
  1  problems found: verify found damaged lines; cat skipped lines it could not decode
  2  usage error
  3  the store is held by another process (stop the daemon first)
  4  error: missing file, not a store, I/O error
`

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `pendingctl inspects and repairs a syncbreaker pending store: the JSONL spill
file a daemon was given (for example ~/.shelltime/sync-pending.jsonl) and the
files beside it (sealed segments, .dead, .quarantine).

Usage:
  pendingctl COMMAND [flags] FILE

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `  help          show this help, or "pendingctl help COMMAND" for one command

stat, verify and cat only read, take no lock and are safe while the daemon
runs. repair, requeue-dead, purge and export-legacy open the store and refuse while the
daemon holds it. Run "pendingctl COMMAND --help" for a command's flags.

`+exitCodesHelp)
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(args) > 1 {
			if c, ok := lookup(args[1]); ok {
				fs, _ := newFlagSet(c)
				commandUsage(stdout, c, fs)
				return exitOK
			}
			fmt.Fprintf(stderr, "pendingctl: unknown command %q\n\n", args[1])
			mainUsage(stderr)
			return exitUsage
		}
		mainUsage(stdout)
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "pendingctl: unknown command %q\n\n", name)
		mainUsage(stderr)
		return exitUsage
	}
	fs, exec := newFlagSet(c)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(stdout, c, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "pendingctl %s: %v\n", c.name, err)
		fmt.Fprintf(stderr, "Run 'pendingctl %s --help' for usage.\n", c.name)
		return exitUsage
	}
	if len(pos) != 1 || pos[0] == "" {
		fmt.Fprintf(stderr, "pendingctl %s: want exactly one FILE, got %d arguments\n", c.name, len(pos))
		fmt.Fprintf(stderr, "Run 'pendingctl %s --help' for usage.\n", c.name)
		return exitUsage
	}
	return exec(pos[0], stdout, stderr)
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlagSet returns c's flags and the function that runs c with them.
func newFlagSet(c command) (*flag.FlagSet, func(path string, stdout, stderr io.Writer) int) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors and usage itself
	return fs, c.setup(fs)
}

func commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: pendingctl %s [flags] FILE\n\n%s\n", c.name, strings.TrimSpace(c.usage))
	var hasFlags bool
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fmt.Fprint(w, "\n"+exitCodesHelp)
}

// parseInterspersed parses flags anywhere on the line, so both
// "stat --json FILE" and "stat FILE --json" work; everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// maxPayloadFlag registers the flag every command shares: the daemon's
// StoreConfig.MaxPayloadBytes, so lines it accepted are not read as too
// long.
func maxPayloadFlag(fs *flag.FlagSet) *int {
	return fs.Int("max-payload-bytes", 0,
		"the daemon's StoreConfig.MaxPayloadBytes, if it raised it (0: the library default, 16 MiB)")
}

// lockedMessage is what repair, requeue-dead and purge say when the store is held.
const lockedMessage = "the store is held by another process — is the daemon running? stop it first"

// fail prints err for command name and returns its exit code.
func fail(stderr io.Writer, name string, err error) int {
	if errors.Is(err, syncbreaker.ErrStoreLocked) {
		fmt.Fprintf(stderr, "pendingctl %s: %s\n", name, lockedMessage)
		return exitLocked
	}
	fmt.Fprintf(stderr, "pendingctl %s: %v\n", name, err)
	return exitError
}
