//go:build windows

package fsx

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// What WriteFile returns on a full volume, wrapped as os.File.Write does.
func TestIsDiskFullWindowsErrors(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  bool
	}{
		{112, true},  // ERROR_DISK_FULL
		{39, true},   // ERROR_HANDLE_DISK_FULL
		{1295, true}, // ERROR_DISK_QUOTA_EXCEEDED
		{5, false},   // ERROR_ACCESS_DENIED
		{32, false},  // ERROR_SHARING_VIOLATION
	}
	for _, tt := range tests {
		err := fmt.Errorf("append: %w", &os.PathError{Op: "write", Path: "p.jsonl", Err: tt.errno})
		assert.Equal(t, tt.want, IsDiskFull(err), "errno %d", uint32(tt.errno))
	}
}
