package syncbreaker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// storeFile is the part of *os.File the store uses. It exists, with
// storeFS, so tests can inject ENOSPC, EIO and short writes at any write,
// fsync or rename.
type storeFile interface {
	io.Reader
	io.Writer
	io.WriterAt
	io.Closer
	Name() string
	Sync() error
	Truncate(size int64) error
	Chmod(mode os.FileMode) error
	Stat() (os.FileInfo, error)
}

// storeFS is the unexported filesystem seam; osFS is the real one.
type storeFS interface {
	OpenFile(name string, flag int, perm os.FileMode) (storeFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir makes renames and removals in dir durable (a no-op where the
	// OS has no directory fsync).
	SyncDir(dir string) error
}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (storeFile, error) {
	f, err := os.OpenFile(name, flag|openNoFollow, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) SyncDir(dir string) error             { return syncDir(dir) }

const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// createPrivate creates (or opens) name with flag and forces mode 0600
// whatever the umask, since shell history is private.
func createPrivate(fsys storeFS, name string, flag int) (storeFile, error) {
	f, err := fsys.OpenFile(name, flag|os.O_CREATE, filePerm)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(filePerm); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// mkdirPrivate creates dir and any missing parents with mode 0700 (chmod
// after mkdir so the umask cannot widen or narrow it). Directories that
// already exist are left alone: the store's parent may be $HOME.
func mkdirPrivate(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("syncbreaker: %s is not a directory", filepath.Base(dir))
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("syncbreaker: %w", err)
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	if err := os.Chmod(dir, dirPerm); err != nil {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	return nil
}

// appendLog is an append-only side file (quarantine, dead letters) that is
// created on first write, so a healthy store has neither file.
type appendLog struct {
	fsys  storeFS
	path  string
	f     storeFile
	wrote int64
}

func (l *appendLog) Write(p []byte) (int, error) {
	if l.f == nil {
		f, err := createPrivate(l.fsys, l.path, os.O_WRONLY|os.O_APPEND)
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
