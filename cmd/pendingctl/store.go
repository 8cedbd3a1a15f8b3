package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// errNotStore says the files at FILE hold lines, none of them a record.
var errNotStore = errors.New("not a syncbreaker store")

// storeLayout lists the store's files and checks they belong to a store:
// it fails with a clear message when there is no store at path at all, path
// is a directory, or the files are not a store's (see checkIsStore).
func storeLayout(path string, cfg jsonl.ScanConfig) (jsonl.Layout, error) {
	l, err := storeFiles(path)
	if err != nil {
		return l, err
	}
	return l, checkIsStore(l, cfg)
}

// storeFiles lists the store's files and fails with a clear message when
// there is no store at path at all, or path is a directory.
func storeFiles(path string) (jsonl.Layout, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return jsonl.Layout{}, fmt.Errorf("%s is a directory; give the store file the daemon was given (for example ~/.shelltime/sync-pending.jsonl)", path)
	}
	l, err := jsonl.Files(path)
	if err != nil {
		return l, err
	}
	if l.Active == "" && len(l.Segments) == 0 && len(l.Superseded) == 0 && l.Dead == "" && l.Quarantine == "" {
		return l, fmt.Errorf("no store at %s: neither the file nor any segment, .dead or .quarantine file beside it exists: %w", path, fs.ErrNotExist)
	}
	return l, nil
}

// recordFiles are the files that should hold only records: the pending
// files in replay order, then the dead-letter file.
func recordFiles(l jsonl.Layout) []string {
	files := pendingFiles(l)
	if l.Dead != "" {
		files = append(files, l.Dead)
	}
	return files
}

// pendingFiles are the files a replay reads, oldest first.
func pendingFiles(l jsonl.Layout) []string {
	files := append([]string(nil), l.Segments...)
	if l.Active != "" {
		files = append(files, l.Active)
	}
	return files
}

// settledMarks returns what the store's ledger says is delivered though
// still in its files: in each segment, the lines below the offset a drain
// settled before it stopped or crashed, and records the daemon handled
// after their round gave up on them. The store skips both. A ledger the
// store could not read counts as none, as it does for the store.
func settledMarks(path string) jsonl.Delivered {
	d, err := jsonl.ReadDelivered(path)
	if err != nil {
		return jsonl.Delivered{}
	}
	return d
}

// scanPending is scanFile without the lines the ledger says are delivered.
func scanPending(path string, delivered jsonl.Delivered, cfg jsonl.ScanConfig, fn func(jsonl.ScanEntry) error) error {
	return scanFile(path, cfg, func(e jsonl.ScanEntry) error {
		if delivered.Has(path, e) {
			return nil
		}
		return fn(e)
	})
}

// scanFile is jsonl.ScanFile that treats a file which vanished since
// it was listed as empty: a running daemon's replay deletes segments it has
// drained.
func scanFile(path string, cfg jsonl.ScanConfig, fn func(jsonl.ScanEntry) error) error {
	err := jsonl.ScanFile(path, cfg, fn)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// checkIsStore fails with errNotStore when the record files hold complete
// lines and not one decodes as a record (or a legacy payload): the path is
// most likely some other file, which repair would otherwise move line by
// line into quarantine. Lines of NUL bytes and torn tails are damage a
// crash leaves in a real store, so they do not count as foreign. It stops
// at the first record.
func checkIsStore(l jsonl.Layout, cfg jsonl.ScanConfig) error {
	errFound := errors.New("record found")
	foreign := 0
	for _, path := range recordFiles(l) {
		err := scanFile(path, cfg, func(e jsonl.ScanEntry) error {
			switch {
			case e.Problem == jsonl.ProblemNone:
				return errFound
			case e.Problem == jsonl.ProblemTornTail:
			case foreign > 0:
				foreign++ // already foreign unless a record turns up: skip the reread
			default:
				nul, err := isNULRun(path, e.Offset, e.Length)
				if err != nil {
					return err
				}
				if !nul {
					foreign++
				}
			}
			return nil
		})
		if errors.Is(err, errFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if foreign > 0 {
		return fmt.Errorf("%w: no line of %s decodes as a record or a legacy payload (%s); check the path",
			errNotStore, strings.Join(recordFiles(l), ", "), plural(int64(foreign), "unreadable line"))
	}
	return nil
}

// isNULRun reports whether the line at off (length n, newline included)
// is only NUL bytes, what a filesystem may leave after power loss. It reads
// the bytes back rather than keep them, so a payload never sits in memory
// longer than the scan needs it. Like every open here, it opens only a
// regular file: a FIFO swapped in since the scan would block it.
func isNULRun(path string, off, n int64) (bool, error) {
	f, err := fsx.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	r := io.NewSectionReader(f, off, n)
	for {
		k, err := r.Read(buf)
		chunk := buf[:k]
		chunk = bytes.TrimRight(chunk, "\n")
		if len(bytes.Trim(chunk, "\x00")) != 0 {
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}
