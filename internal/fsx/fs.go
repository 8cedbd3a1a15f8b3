// Package fsx is the store's file-system layer: the seam every file
// operation goes through (so tests can inject faults), opening only regular
// files, private files and directories, directory fsync, the store's
// single-owner lock, and what counts as a full disk.
package fsx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is the part of *os.File the store uses. It exists, with
// FS, so tests can inject ENOSPC, EIO and short writes at any write,
// fsync or rename.
type File interface {
	io.Reader
	io.Seeker // opening reads a file from a ledger's offset on
	io.Writer
	io.WriterAt
	io.Closer
	Name() string
	Sync() error
	Truncate(size int64) error
	Chmod(mode os.FileMode) error
	Stat() (os.FileInfo, error)
	Fd() uintptr // for LockFile
}

// ErrLocked is returned by Lock when another owner, in this process or
// another, holds the lock.
var ErrLocked = errors.New("syncbreaker: store is locked by another owner")

// FS is the file-system seam: every file operation of the store goes
// through it, so a test can fail any one of them. OS is the real one.
type FS interface {
	// OpenFile opens a regular file; see the package function OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	ReadDir(dir string) ([]os.DirEntry, error)
	Lstat(name string) (os.FileInfo, error)
	Stat(name string) (os.FileInfo, error)
	Mkdir(name string, perm os.FileMode) error
	Chmod(name string, mode os.FileMode) error
	// SyncDir makes renames and removals in dir durable (a no-op where the
	// OS has no directory fsync).
	SyncDir(dir string) error
	// Lock takes the store's single-owner lock; see the package function
	// Lock.
	Lock(name string) (io.Closer, error)
	// LockFile locks the open file f for its owner; see the package
	// function LockFile.
	LockFile(f File) error
	// SameFile reports whether the file at name (not following a
	// symlink) is f, by device and inode, and f's size. A missing name
	// is not f.
	SameFile(f File, name string) (same bool, size int64, err error)
}

// OS is the real file system. Its OpenFile opens only regular files and
// never follows a symlink.
type OS struct{}

func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return f, nil
}

func (OS) Rename(oldpath, newpath string) error      { return os.Rename(oldpath, newpath) }
func (OS) Remove(name string) error                  { return os.Remove(name) }
func (OS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }
func (OS) Lstat(name string) (os.FileInfo, error)    { return os.Lstat(name) }
func (OS) Stat(name string) (os.FileInfo, error)     { return os.Stat(name) }
func (OS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }
func (OS) Chmod(name string, mode os.FileMode) error { return os.Chmod(name, mode) }
func (OS) SyncDir(dir string) error                  { return SyncDir(dir) }
func (OS) Lock(name string) (io.Closer, error)       { return Lock(name) }
func (OS) LockFile(f File) error                     { return LockFile(f) }
func (OS) SameFile(f File, name string) (bool, int64, error) {
	return SameFile(f, name)
}

// SameFile is OS.SameFile: os.SameFile of f's fstat and name's lstat,
// that is device and inode (volume and file index on Windows). A link
// count would miss a move to the trash, and a new file created at name.
func SameFile(f File, name string) (same bool, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, 0, err
	}
	pi, err := os.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, fi.Size(), nil
	}
	if err != nil {
		return false, fi.Size(), err
	}
	return os.SameFile(fi, pi), fi.Size(), nil
}

// Modes of everything the store creates, whatever the umask.
const (
	FilePerm = 0o600
	DirPerm  = 0o700
)

// CreatePrivate creates name with flag and forces mode 0600 whatever the
// umask, since shell history is private. A file that exists already is
// opened as it is (unless flag has O_EXCL, which fails): making a file the
// store takes over private is TakeOver's, whose failure is no failed open.
func CreatePrivate(fsys FS, name string, flag int) (File, error) {
	f, err := fsys.OpenFile(name, flag|os.O_CREATE|os.O_EXCL, FilePerm)
	if errors.Is(err, os.ErrExist) && flag&os.O_EXCL == 0 {
		return fsys.OpenFile(name, flag&^os.O_CREATE, 0)
	}
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(FilePerm); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// TakeOver makes the existing regular file name 0600 if it is not. A
// missing file, or something that is not a regular file (which opening it
// refuses), is left alone.
func TakeOver(fsys FS, name string) error {
	fi, err := fsys.Lstat(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() == FilePerm {
		return nil
	}
	return fsys.Chmod(name, FilePerm)
}

// MkdirPrivate creates dir and any missing parents with mode 0700 (chmod
// after mkdir so the umask cannot widen or narrow it). Directories that
// already exist are left alone: the store's parent may be $HOME, and may be
// reached through a symlink.
func MkdirPrivate(fsys FS, dir string) error {
	fi, err := fsys.Stat(dir)
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
		if err := MkdirPrivate(fsys, parent); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, DirPerm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	if err := fsys.Chmod(dir, DirPerm); err != nil {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	return nil
}
