//go:build windows

package fsx

import (
	"errors"
	"os"
)

// OpenFile is os.OpenFile for the store's files: it refuses with
// ErrNotRegular anything that the opened handle says is not a regular file
// (a directory, a device such as NUL or CON). Windows has no FIFOs at file
// paths (named pipes live under \\.\pipe\), so no open blocks.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, describeOpenError(name, err)
	}
	if err := checkRegular(f); err != nil {
		return nil, err
	}
	return f, nil
}

// checkRegular returns nil if f is a regular file, and otherwise closes it
// and says what it is.
func checkRegular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return &notRegularError{name: f.Name(), typ: fi.Mode().Type()}
	}
	return nil
}
