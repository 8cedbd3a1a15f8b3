module github.com/syncbreaker/syncbreaker/benchmarks

go 1.25.0

replace github.com/syncbreaker/syncbreaker => ../

require (
	github.com/ThreeDotsLabs/watermill v1.5.1
	github.com/eapache/go-resiliency v1.7.0
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/sony/gobreaker/v2 v2.4.0
	github.com/syncbreaker/syncbreaker v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/bits-and-blooms/bitset v1.24.4 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/lithammer/shortuuid/v3 v3.0.7 // indirect
	github.com/oklog/ulid v1.3.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	golang.org/x/time v0.15.0 // indirect
)
