// Command pendingctl inspects and repairs a syncbreaker pending store
// without writing code: the JSONL spill file a daemon was given (for
// example ~/.shelltime/sync-pending.jsonl) and the files beside it, which
// are its sealed segments (FILE.seg.*), dead-letter file (FILE.dead) and
// quarantine file (FILE.quarantine).
//
// Install it with
//
//	go install github.com/syncbreaker/syncbreaker/cmd/pendingctl@latest
//
// Usage:
//
//	pendingctl stat [--json] FILE          counts, sizes, enqueue times, attempts histogram, files
//	pendingctl verify FILE                 every damaged line: file, line, byte offset, reason
//	pendingctl cat [--with-meta] [--dead | --quarantine] FILE
//	                                       the payloads as JSON lines, for jq
//	pendingctl repair FILE                 open the store so it repairs itself; say what it did
//	pendingctl requeue-dead FILE           move dead-lettered records back to pending
//	pendingctl export-legacy FILE          write what is pending back into FILE, one payload
//	                                       a line, before a downgrade
//	pendingctl help [COMMAND]              usage; also "pendingctl COMMAND --help"
//
// Every command takes --max-payload-bytes, to pass the daemon's
// StoreConfig.MaxPayloadBytes if it raised it above the 16 MiB default
// (otherwise its largest records would read as over-long lines). Flags may
// come before or after FILE.
//
// stat, verify and cat only read: they open files read-only, take no lock
// and are safe while the daemon runs (a record being appended at that
// moment may show up as a torn tail). repair, requeue-dead, purge and
// export-legacy open the
// store as the daemon does, so they refuse while the daemon holds it; stop
// the daemon first. Every command refuses a path where there is no store,
// a store file that is not a regular file (a directory, FIFO, socket or
// device: never opened in a way that could block), and a file in which no
// line decodes as a record or as a payload of the original implementation,
// rather than treat a wrong path as a damaged store.
//
// # Privacy
//
// Payloads may be shell history. cat is the one command that prints them,
// on stdout, because that is what it is asked for; no command puts payload
// content in a message, on stderr, or anywhere else. Damaged lines are
// described by file, line number, byte offset, length and reason.
//
// # cat's output
//
// One JSON value a line, in replay order. A payload that is JSON on one
// line (valid UTF-8, no line break, no whitespace at either end) is printed
// as is, byte for byte, so "pendingctl cat FILE | jq .field" works on the
// daemon's own messages. Any other payload is printed as
// {"payload_base64":"..."}, standard base64 of its exact bytes. A JSON
// payload that is itself such an object cannot be told apart from the
// fallback; --with-meta is unambiguous:
//
//	{"id":"...","enqueued_at":"2006-01-02T15:04:05.999999999Z","attempts":0,"payload":{...}}
//	{"id":"...","enqueued_at":"2006-01-02T15:04:05.999999999Z","attempts":2,"payload_base64":"..."}
//
// with "legacy":true before the payload for a line written by the original
// implementation (one bare JSON payload a line). Lines that do not decode
// are reported on stderr, not printed, and cat exits 1.
//
// # Exit codes
//
//	0  ok
//	1  problems found: verify found damaged lines; cat skipped lines it could not decode
//	2  usage error
//	3  the store is held by another process (stop the daemon first)
//	4  error: missing file, not a store, I/O error
package main
