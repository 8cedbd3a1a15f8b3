//go:build unix

package fsx

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsDiskFullQuota(t *testing.T) {
	assert.True(t, IsDiskFull(&os.PathError{Op: "write", Path: "p.jsonl", Err: syscall.EDQUOT}))
}
