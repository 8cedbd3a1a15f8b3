package jsonl

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkRecordID compares ways of writing a new record's UUIDv7 into a
// reused line buffer, as Append does. For example:
//
//	go test -run '^$' -bench RecordID -benchmem -count 5 .
func BenchmarkRecordID(b *testing.B) {
	b.Run("idGen.appendNext", func(b *testing.B) {
		var g idGen
		buf := make([]byte, 0, 64)
		for b.Loop() {
			buf = g.appendNext(buf[:0], time.Now())
		}
	})
	b.Run("uuid.NewV7+appendUUID", func(b *testing.B) {
		buf := make([]byte, 0, 64)
		for b.Loop() {
			u, err := uuid.NewV7()
			if err != nil {
				b.Fatal(err)
			}
			buf = appendUUID(buf[:0], u)
		}
	})
	b.Run("uuid.NewV7+String", func(b *testing.B) {
		var s string
		for b.Loop() {
			u, err := uuid.NewV7()
			if err != nil {
				b.Fatal(err)
			}
			s = u.String()
		}
		_ = s
	})
	// Parallel: Append's callers, contending for the generator's lock.
	b.Run("idGen.appendNext/parallel", func(b *testing.B) {
		var g idGen
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 64)
			for pb.Next() {
				buf = g.appendNext(buf[:0], time.Now())
			}
		})
	})
	b.Run("uuid.NewV7+appendUUID/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 64)
			for pb.Next() {
				u, err := uuid.NewV7()
				if err != nil {
					b.Error(err)
					return
				}
				buf = appendUUID(buf[:0], u)
			}
		})
	})
}
