module github.com/syncbreaker/syncbreaker/benchmarks

go 1.25.0

replace github.com/syncbreaker/syncbreaker => ../

require (
	github.com/ThreeDotsLabs/watermill v1.5.1
	github.com/eapache/go-resiliency v1.7.0
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/joncrlsn/dque v0.0.0-20211108142734-c2ef48c5192a
	github.com/sony/gobreaker/v2 v2.4.0
	github.com/syncbreaker/syncbreaker v0.0.0-00010101000000-000000000000
	github.com/tidwall/wal v1.2.1
	go.etcd.io/bbolt v1.4.3
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bits-and-blooms/bitset v1.24.4 // indirect
	github.com/gofrs/flock v0.7.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/lithammer/shortuuid/v3 v3.0.7 // indirect
	github.com/oklog/ulid v1.3.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/tidwall/gjson v1.10.2 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	github.com/tidwall/tinylru v1.1.0 // indirect
	golang.org/x/sys v0.35.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
