package jsonl

import (
	"bytes"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/syncbreaker/syncbreaker/internal/fsx"
)

// crashFS is the crash-state explorer's file system: one directory held in
// memory behind the store's seam (fsx.FS), which records, in order, every
// operation that changes what a power loss may leave: creates, writes (with
// their offset and bytes), truncates, fsyncs, renames, removes and
// directory fsyncs. Files are inodes of their own, apart from their names,
// so a rename, or a name reused after a remove, keeps them apart. Reads,
// stats and listings change nothing and are not recorded. Nothing here
// touches the disk: a crash state is rebuilt from the log in memory and
// opened in a crashFS of its own (see TestCrashStates).
type crashFS struct {
	dir string // the store's directory, absolute

	mu   sync.Mutex
	ns   map[string]int // base name -> inode
	data map[int][]byte // inode -> content
	next int            // last inode number handed out
	rec  bool           // record operations into log
	log  []crashOp
	step func() string // labels recorded operations; may be nil
	// readTemp is set when a temp file this crashFS did not create is
	// opened for reading (see crashImage.key).
	readTemp bool
	made     map[int]bool // inodes created here
}

type crashOpKind int

const (
	crashCreate crashOpKind = iota
	crashWrite
	crashTruncate
	crashFsync
	crashRename
	crashRemove
	crashSyncDir
)

var crashOpNames = [...]string{"create", "write", "truncate", "fsync", "rename", "remove", "syncdir"}

func (k crashOpKind) String() string { return crashOpNames[k] }

// crashOp is one recorded operation.
type crashOp struct {
	kind crashOpKind
	ino  int    // the file (not for syncdir)
	name string // the name it was opened or created under; a rename's old name
	to   string // a rename's new name
	off  int64  // a write's offset
	data []byte // a write's bytes
	size int64  // a truncate's new size
	step string // the workload step that made it
}

// newCrashFS returns a crashFS for directory dir holding files (base name
// -> content), which it takes as durable; rec turns recording on.
func newCrashFS(dir string, files map[string][]byte, rec bool) *crashFS {
	f := &crashFS{dir: dir, ns: map[string]int{}, data: map[int][]byte{}, rec: rec}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f.next++
		f.ns[name], f.data[f.next] = f.next, bytes.Clone(files[name])
	}
	return f
}

// logLocked records op. Requires f.mu.
func (f *crashFS) logLocked(op crashOp) {
	if !f.rec {
		return
	}
	if f.step != nil {
		op.step = f.step()
	}
	f.log = append(f.log, op)
}

// replay applies op, recorded elsewhere, and records it: a trace that
// starts from another's state replays the operations not durable there.
func (f *crashFS) replay(op crashOp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op.kind {
	case crashCreate:
		f.ns[op.name] = op.ino // its content, if fsynced since, is already there
	case crashWrite:
		f.data[op.ino] = writeAt(f.data[op.ino], op.data, op.off)
	case crashTruncate:
		f.data[op.ino] = resize(f.data[op.ino], op.size)
	case crashRename:
		delete(f.ns, op.name)
		f.ns[op.to] = op.ino
	case crashRemove:
		delete(f.ns, op.name)
	}
	op.step = "before the crash: " + op.step
	f.log = append(f.log, op)
}

// ops returns how many operations are recorded so far.
func (f *crashFS) ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.log)
}

func (f *crashFS) recorded() []crashOp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// content returns a copy of the live file name's content, or nil.
func (f *crashFS) content(name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[name]
	if !ok {
		return nil
	}
	return bytes.Clone(f.data[ino])
}

// crashLine is where a line lives: a file (by name and inode) and the
// offset just past its newline.
type crashLine struct {
	name string
	ino  int
	end  int64
}

// locate finds the segment lines of the record with the given ID.
func (f *crashFS) locate(id string) []crashLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	needle := []byte(`"id":"` + id + `"`)
	var out []crashLine
	for _, name := range slices.Sorted(maps.Keys(f.ns)) {
		if !strings.Contains(name, segInfix) {
			continue
		}
		b := f.data[f.ns[name]]
		for from := 0; ; {
			i := bytes.Index(b[from:], needle)
			if i < 0 {
				break
			}
			at := from + i
			end := len(b)
			if nl := bytes.IndexByte(b[at:], '\n'); nl >= 0 {
				end = at + nl + 1
			}
			out = append(out, crashLine{name: name, ino: f.ns[name], end: int64(end)})
			from = end
		}
	}
	return out
}

func (f *crashFS) base(name string) (string, error) {
	if filepath.Dir(name) != f.dir {
		return "", syscall.ENOENT
	}
	return filepath.Base(name), nil
}

func crashPathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (f *crashFS) OpenFile(name string, flag int, perm os.FileMode) (fsx.File, error) {
	base, err := f.base(name)
	if err != nil {
		return nil, crashPathErr("open", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, crashPathErr("open", name, syscall.EEXIST)
	case !ok && flag&os.O_CREATE == 0:
		return nil, crashPathErr("open", name, syscall.ENOENT)
	case !ok:
		f.next++
		ino = f.next
		f.ns[base], f.data[ino] = ino, nil
		if f.made == nil {
			f.made = map[int]bool{}
		}
		f.made[ino] = true
		f.logLocked(crashOp{kind: crashCreate, ino: ino, name: base})
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	if acc != os.O_WRONLY && strings.Contains(base, tmpInfix) && !f.made[ino] {
		f.readTemp = true
	}
	file := &crashFile{fs: f, ino: ino, path: name, base: base,
		read: acc == os.O_RDONLY || acc == os.O_RDWR, write: acc == os.O_WRONLY || acc == os.O_RDWR}
	if flag&os.O_TRUNC != 0 && file.write {
		f.truncateLocked(file, 0)
	}
	return file, nil
}

func (f *crashFS) Rename(oldpath, newpath string) error {
	ob, err := f.base(oldpath)
	if err != nil {
		return crashPathErr("rename", oldpath, err)
	}
	nb, err := f.base(newpath)
	if err != nil {
		return crashPathErr("rename", newpath, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[ob]
	if !ok {
		return crashPathErr("rename", oldpath, syscall.ENOENT)
	}
	if ob == nb {
		return nil
	}
	delete(f.ns, ob)
	f.ns[nb] = ino
	f.logLocked(crashOp{kind: crashRename, ino: ino, name: ob, to: nb})
	return nil
}

func (f *crashFS) Remove(name string) error {
	base, err := f.base(name)
	if err != nil {
		return crashPathErr("remove", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[base]
	if !ok {
		return crashPathErr("remove", name, syscall.ENOENT)
	}
	delete(f.ns, base)
	f.logLocked(crashOp{kind: crashRemove, ino: ino, name: base})
	return nil
}

func (f *crashFS) ReadDir(dir string) ([]os.DirEntry, error) {
	if dir != f.dir && filepath.Clean(dir) != f.dir {
		return nil, crashPathErr("readdir", dir, syscall.ENOENT)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []os.DirEntry
	for _, name := range slices.Sorted(maps.Keys(f.ns)) {
		out = append(out, crashInfo{name: name, size: int64(len(f.data[f.ns[name]]))})
	}
	return out, nil
}

func (f *crashFS) Lstat(name string) (os.FileInfo, error) { return f.Stat(name) }

func (f *crashFS) Stat(name string) (os.FileInfo, error) {
	if filepath.Clean(name) == f.dir {
		return crashInfo{name: filepath.Base(f.dir), dir: true}, nil
	}
	base, err := f.base(name)
	if err != nil {
		return nil, crashPathErr("stat", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[base]
	if !ok {
		return nil, crashPathErr("stat", name, syscall.ENOENT)
	}
	return crashInfo{name: base, size: int64(len(f.data[ino]))}, nil
}

func (f *crashFS) Mkdir(name string, _ os.FileMode) error {
	return crashPathErr("mkdir", name, syscall.EEXIST)
}

func (f *crashFS) Chmod(string, os.FileMode) error { return nil }

func (f *crashFS) SyncDir(dir string) error {
	if filepath.Clean(dir) != f.dir {
		return crashPathErr("syncdir", dir, syscall.ENOENT)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logLocked(crashOp{kind: crashSyncDir})
	return nil
}

// Lock always succeeds: one store at a time uses a crashFS.
func (f *crashFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }
func (f *crashFS) LockFile(fsx.File) error        { return nil }

func (f *crashFS) SameFile(file fsx.File, name string) (bool, int64, error) {
	c := file.(*crashFile)
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.ns[filepath.Base(name)]
	return ok && ino == c.ino, int64(len(f.data[c.ino])), nil
}

// truncateLocked sets the file's size. Requires f.mu.
func (f *crashFS) truncateLocked(file *crashFile, size int64) {
	f.data[file.ino] = resize(f.data[file.ino], size)
	f.logLocked(crashOp{kind: crashTruncate, ino: file.ino, name: file.base, size: size})
}

// resize returns b cut or zero-extended to size.
func resize(b []byte, size int64) []byte {
	if int64(len(b)) >= size {
		return b[:size:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

// writeAt returns b with p written at off, zero-filling a gap.
func writeAt(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); int64(len(b)) < end {
		b = resize(b, end)
	}
	copy(b[off:], p)
	return b
}

type crashFile struct {
	fs          *crashFS
	ino         int
	path, base  string
	read, write bool
	pos         int64
	closed      bool
}

func (c *crashFile) check(write bool) error {
	switch {
	case c.closed:
		return os.ErrClosed
	case write && !c.write, !write && !c.read:
		return crashPathErr("access", c.path, syscall.EBADF)
	}
	return nil
}

func (c *crashFile) Read(p []byte) (int, error) {
	if err := c.check(false); err != nil {
		return 0, err
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	b := c.fs.data[c.ino]
	if c.pos >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[c.pos:])
	c.pos += int64(n)
	return n, nil
}

func (c *crashFile) Seek(off int64, whence int) (int64, error) {
	if err := c.check(false); err != nil {
		return 0, err
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	switch whence {
	case io.SeekCurrent:
		off += c.pos
	case io.SeekEnd:
		off += int64(len(c.fs.data[c.ino]))
	}
	if off < 0 {
		return 0, crashPathErr("seek", c.path, syscall.EINVAL)
	}
	c.pos = off
	return off, nil
}

func (c *crashFile) Write(p []byte) (int, error) {
	n, err := c.WriteAt(p, c.pos)
	c.pos += int64(n)
	return n, err
}

func (c *crashFile) WriteAt(p []byte, off int64) (int, error) {
	if err := c.check(true); err != nil {
		return 0, err
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	c.fs.data[c.ino] = writeAt(c.fs.data[c.ino], p, off)
	c.fs.logLocked(crashOp{kind: crashWrite, ino: c.ino, name: c.base, off: off, data: bytes.Clone(p)})
	return len(p), nil
}

func (c *crashFile) Close() error {
	if c.closed {
		return os.ErrClosed
	}
	c.closed = true
	return nil
}

func (c *crashFile) Name() string { return c.path }
func (c *crashFile) Fd() uintptr  { return ^uintptr(0) }

func (c *crashFile) Sync() error {
	if c.closed {
		return os.ErrClosed
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	c.fs.logLocked(crashOp{kind: crashFsync, ino: c.ino, name: c.base})
	return nil
}

func (c *crashFile) Truncate(size int64) error {
	if err := c.check(true); err != nil {
		return err
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	c.fs.truncateLocked(c, size)
	return nil
}

func (c *crashFile) Chmod(os.FileMode) error {
	if c.closed {
		return os.ErrClosed
	}
	return nil
}

func (c *crashFile) Stat() (os.FileInfo, error) {
	if c.closed {
		return nil, os.ErrClosed
	}
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	return crashInfo{name: c.base, size: int64(len(c.fs.data[c.ino]))}, nil
}

// crashInfo is both the fs.FileInfo and the fs.DirEntry of a crashFS file
// (or of its directory).
type crashInfo struct {
	name string
	size int64
	dir  bool
}

// crashModTime is every file's modification time (the EnqueuedAt of legacy
// lines).
var crashModTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (i crashInfo) Name() string { return i.name }
func (i crashInfo) Size() int64  { return i.size }
func (i crashInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | fsx.DirPerm
	}
	return fsx.FilePerm
}
func (i crashInfo) ModTime() time.Time         { return crashModTime }
func (i crashInfo) IsDir() bool                { return i.dir }
func (i crashInfo) Sys() any                   { return nil }
func (i crashInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i crashInfo) Info() (fs.FileInfo, error) { return i, nil }

var (
	_ fsx.FS      = (*crashFS)(nil)
	_ fsx.File    = (*crashFile)(nil)
	_ os.DirEntry = crashInfo{}
)
