// Package benchmarks measures syncbreaker against what a user would
// otherwise pick, in the same run: sony/gobreaker, failsafe-go and
// eapache/go-resiliency on the breaker's hot path, a naive
// open/write/close-per-line file for spilling, a read-all-lines replay and
// a raw line scan for replaying, a publish-everything loop for
// republishing, and the disk queues a daemon could use instead of the
// store (tidwall/wal, go.etcd.io/bbolt, joncrlsn/dque) on its append,
// drain and open workloads (peers_test.go).
//
// It is a module of its own so that importers of syncbreaker never
// download the peers. It holds no library code: everything lives in its
// _test.go files. Run the suite with run.sh (see BENCHMARKS.md at the
// repository root); `go test ./...` runs only the harness's own tests.
package benchmarks
