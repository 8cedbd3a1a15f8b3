//go:build unix

package fsx

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// OpenFile is os.OpenFile for the store's files. It never follows a symlink
// (O_NOFOLLOW), never blocks in open(2) on a FIFO or a device (O_NONBLOCK),
// and refuses with ErrNotRegular anything that fstat of the opened
// descriptor says is not a regular file: a check of the path before the
// open would race with a file swapped in between. The file it returns is
// in blocking mode.
func OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, typ, err := openNonblock(name, flag|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, describeOpenError(name, err)
	}
	if typ != syscall.S_IFREG {
		_ = syscall.Close(fd)
		return nil, &notRegularError{name: name, typ: modeType(typ)}
	}
	return blockingFile(fd, name)
}

// openNonblock opens name with O_NONBLOCK and returns the descriptor and
// its S_IFMT type bits.
func openNonblock(name string, flag int, perm os.FileMode) (fd int, typ uint32, err error) {
	flag |= syscall.O_NONBLOCK | syscall.O_CLOEXEC
	err = ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(name, flag, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return -1, 0, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var st syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &st) }); err != nil {
		_ = syscall.Close(fd)
		return -1, 0, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	return fd, uint32(st.Mode) & syscall.S_IFMT, nil
}

// blockingFile clears O_NONBLOCK, which has no effect on a regular file on
// Linux or macOS but would make an *os.File poll it on some systems, and
// wraps fd.
func blockingFile(fd int, name string) (*os.File, error) {
	if err := syscall.SetNonblock(fd, false); err != nil {
		_ = syscall.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func modeType(typ uint32) fs.FileMode {
	switch typ {
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
