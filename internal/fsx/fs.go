// Package fsx is the store's file-system layer: the seam every file
// operation goes through (so tests can inject faults), private files and
// directories, directory fsync, and the store's single-owner lock.
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
	io.Writer
	io.WriterAt
	io.Closer
	Name() string
	Sync() error
	Truncate(size int64) error
	Chmod(mode os.FileMode) error
	Stat() (os.FileInfo, error)
}

// ErrLocked is returned by Lock when another owner, in this process or
// another, holds the lock.
var ErrLocked = errors.New("syncbreaker: store is locked by another owner")

// FS is the file-system seam; OS is the real one.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir makes renames and removals in dir durable (a no-op where the
	// OS has no directory fsync).
	SyncDir(dir string) error
}

// OS is the real file system. Its OpenFile never follows a symlink.
type OS struct{}

func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag|OpenNoFollow, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (OS) Remove(name string) error             { return os.Remove(name) }
func (OS) SyncDir(dir string) error             { return SyncDir(dir) }

// Modes of everything the store creates, whatever the umask.
const (
	FilePerm = 0o600
	DirPerm  = 0o700
)

// CreatePrivate creates (or opens) name with flag and forces mode 0600
// whatever the umask, since shell history is private.
func CreatePrivate(fsys FS, name string, flag int) (File, error) {
	f, err := fsys.OpenFile(name, flag|os.O_CREATE, FilePerm)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(FilePerm); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// MkdirPrivate creates dir and any missing parents with mode 0700 (chmod
// after mkdir so the umask cannot widen or narrow it). Directories that
// already exist are left alone: the store's parent may be $HOME.
func MkdirPrivate(dir string) error {
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
		if err := MkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, DirPerm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	if err := os.Chmod(dir, DirPerm); err != nil {
		return fmt.Errorf("syncbreaker: create directory: %w", err)
	}
	return nil
}
