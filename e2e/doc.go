// Package e2e holds syncbreaker's end-to-end tests against a real NATS
// JetStream server, embedded in the test process and listening on loopback.
//
// It is a module of its own so the library's go.mod does not pull in NATS.
// Run it with:
//
//	cd e2e && go test -race ./...
package e2e
