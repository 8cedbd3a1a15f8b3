package fsx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular is the errors.Is target for a store file that exists but
// is not a regular file: a directory, a named pipe, a socket, a device or a
// symlink. Opening a FIFO for reading would otherwise block until some
// writer came, and hang the daemon or pendingctl.
var ErrNotRegular = errors.New("not a regular file")

// notRegularError says what is there instead, by base name only.
type notRegularError struct {
	name string
	typ  fs.FileMode // the type bits
}

func (e *notRegularError) Error() string {
	return filepath.Base(e.name) + " is a " + typeName(e.typ) + ", not a regular file"
}

func (e *notRegularError) Unwrap() error { return ErrNotRegular }

func typeName(typ fs.FileMode) string {
	switch {
	case typ&fs.ModeDir != 0:
		return "directory"
	case typ&fs.ModeSymlink != 0:
		return "symlink"
	case typ&fs.ModeNamedPipe != 0:
		return "named pipe"
	case typ&fs.ModeSocket != 0:
		return "socket"
	case typ&fs.ModeCharDevice != 0:
		return "character device"
	case typ&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// describeOpenError turns a failed open of something that is not a regular
// file into ErrNotRegular: a FIFO opened write-only with no reader, a
// socket, a directory opened for writing and a symlink under O_NOFOLLOW
// each fail in open(2) itself, with an errno that does not say why. The
// Lstat only names what is there; it is not what keeps the open safe.
func describeOpenError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, lerr := os.Lstat(name)
	if lerr != nil || fi.Mode().IsRegular() {
		return err
	}
	return &notRegularError{name: name, typ: fi.Mode().Type()}
}
