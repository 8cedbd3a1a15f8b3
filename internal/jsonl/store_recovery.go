package jsonl

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/syncbreaker/syncbreaker/internal/fsx"
	"os"
	"path/filepath"
	"time"
)

// RepairReport says what opening a store had to fix. Nothing in it was
// deleted: damaged lines are in the quarantine file.
type RepairReport struct {
	Files             []FileRepair // files that were rewritten, in the order opened
	RemovedTemp       []string     // temp files of an interrupted rewrite (their source still exists)
	RemovedSuperseded []string     // segments a replay had replaced before a crash
}

// FileRepair is the repair of one store file.
type FileRepair struct {
	Path             string
	TornBytes        int64 // bytes of an unfinished last line, moved to quarantine
	Quarantined      int   // lines moved to quarantine, the torn tail included
	QuarantinedBytes int64
	LegacyRewritten  int // legacy lines rewritten as envelopes under their derived IDs
}

// Clean reports whether opening found nothing to repair.
func (r RepairReport) Clean() bool {
	return len(r.Files) == 0 && len(r.RemovedTemp) == 0 && len(r.RemovedSuperseded) == 0
}

// fileSummary is what a pass over a readable file learns.
type fileSummary struct {
	records int64
	size    int64
	first   time.Time // EnqueuedAt of the first record
}

// repairFile makes path hold only whole, valid envelopes. A clean file is
// only read. Otherwise the good records (legacy lines converted) are
// written to a temp file, the bad lines appended to the quarantine, both
// fsynced, and the temp file renamed over path. A crash before the rename
// leaves path as it was and a temp file that the next open deletes; the
// quarantine may then hold a line twice, which loses nothing.
func repairFile(fsys fsx.FS, path string, quarantine *appendLog, maxLine int) (FileRepair, fileSummary, error) {
	rep := FileRepair{Path: path}
	var sum fileSummary
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return rep, sum, fmt.Errorf("syncbreaker: open %s: %w", filepath.Base(path), err)
	}
	fi, err := f.Stat()
	if err != nil {
		return rep, sum, errors.Join(fmt.Errorf("syncbreaker: %w", err), f.Close())
	}
	mtime := fi.ModTime()
	dirty := false
	err = scanRecords(f, maxLine, mtime, nil, func(e *ScanEntry, _ []byte) error {
		if e.Problem != ProblemNone || e.Legacy {
			dirty = true
			return errStopScan
		}
		if sum.records == 0 {
			sum.first = e.Record.EnqueuedAt
		}
		sum.records++
		return nil
	})
	_ = f.Close()
	if err != nil && !errors.Is(err, errStopScan) {
		return rep, sum, err
	}
	if !dirty {
		sum.size = fi.Size()
		return rep, sum, nil
	}
	sum, err = rewriteFile(fsys, path, quarantine, maxLine, mtime, &rep)
	return rep, sum, err
}

var errStopScan = errors.New("stop scan")

func rewriteFile(fsys fsx.FS, path string, quarantine *appendLog, maxLine int, mtime time.Time, rep *FileRepair) (fileSummary, error) {
	var sum fileSummary
	src, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return sum, fmt.Errorf("syncbreaker: repair: %w", err)
	}
	defer src.Close()
	tmpPath := tempPath(path)
	tmp, err := fsx.CreatePrivate(fsys, tmpPath, os.O_WRONLY|os.O_EXCL)
	if err != nil {
		return sum, fmt.Errorf("syncbreaker: repair: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = fsys.Remove(tmpPath)
		}
	}()
	w := bufio.NewWriterSize(tmp, 256<<10)
	var enc []byte
	before := quarantine.wrote
	err = scanRecords(src, maxLine, mtime, quarantine, func(e *ScanEntry, raw []byte) error {
		switch {
		case e.Problem == ProblemTooLong:
			rep.Quarantined++ // its bytes went to the quarantine as they streamed
			return nil
		case e.Problem != ProblemNone:
			rep.Quarantined++
			if e.Problem == ProblemTornTail {
				rep.TornBytes += e.Length
			}
			return quarantine.writeLine(raw)
		}
		if sum.records == 0 {
			sum.first = e.Record.EnqueuedAt
		}
		sum.records++
		if e.Legacy {
			rep.LegacyRewritten++
			enc = appendRecord(enc[:0], e.Record)
		} else {
			enc = append(append(enc[:0], raw...), '\n')
		}
		sum.size += int64(len(enc))
		_, err := w.Write(enc)
		return err
	})
	rep.QuarantinedBytes = quarantine.wrote - before
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = quarantine.close() // the bad lines must be durable before the source goes
	}
	if err == nil {
		err = tmp.Close()
		committed = err == nil
		if !committed {
			_ = fsys.Remove(tmpPath)
		}
	}
	if err == nil {
		if err = fsys.Rename(tmpPath, path); err != nil {
			_ = fsys.Remove(tmpPath)
		}
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return sum, fmt.Errorf("syncbreaker: repair %s: %w", filepath.Base(path), err)
	}
	return sum, nil
}

// tempPath names a temp file beside path that the store will recognise
// (and delete) at the next open.
func tempPath(path string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return path + tmpInfix + hex.EncodeToString(b[:])
}
