//go:build windows

package syncbreaker

const openNoFollow = 0

// syncDir is a no-op: Windows has no directory fsync, and NTFS journals
// renames as metadata.
func syncDir(string) error { return nil }
