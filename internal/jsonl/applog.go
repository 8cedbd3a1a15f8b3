package jsonl

import (
	"errors"
	"os"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// appendLog is an append-only side file (quarantine, dead letters) that is
// created on first write, so a healthy store has neither file.
type appendLog struct {
	fsys  fsx.FS
	path  string
	f     fsx.File
	wrote int64
}

func (l *appendLog) Write(p []byte) (int, error) {
	if l.f == nil {
		f, err := fsx.CreatePrivate(l.fsys, l.path, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Write(p)
	l.wrote += int64(n)
	return n, err
}

// writeLine writes line and a newline in one write, so a crash cannot
// separate them.
func (l *appendLog) writeLine(line []byte) error {
	buf := make([]byte, 0, len(line)+1)
	_, err := l.Write(append(append(buf, line...), '\n'))
	return err
}

// close fsyncs what was written and closes the file.
func (l *appendLog) close() error {
	if l.f == nil {
		return nil
	}
	err := errors.Join(l.f.Sync(), l.f.Close())
	l.f = nil
	return err
}
