//go:build windows

package fsx

// SyncDir is a no-op: Windows has no directory fsync, and NTFS journals
// renames as metadata.
func SyncDir(string) error { return nil }
