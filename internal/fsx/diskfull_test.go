package fsx

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsDiskFull(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{syscall.EIO, false},
		{os.ErrPermission, false},
		{syscall.ENOSPC, true},
		{&os.PathError{Op: "write", Path: "p.jsonl", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("append: %w", &os.PathError{Op: "write", Path: "p.jsonl", Err: syscall.ENOSPC}), true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, IsDiskFull(tt.err), "%v", tt.err)
	}
}
