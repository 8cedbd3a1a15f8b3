package e2e_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

const (
	syncTopic  = "sync"
	streamName = "SYNC"
	// dedupeWindow is how long JetStream remembers a Nats-Msg-Id. It must
	// cover the longest gap between two republishes of one record.
	dedupeWindow = 5 * time.Minute
)

// startJetStream starts an in-process NATS server with JetStream on a random
// loopback port, its storage in a test directory, and a stream for
// syncTopic. It returns the client URL; the server stops when the test ends.
func startJetStream(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats-server did not start")

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.AddStream(&nats.StreamConfig{
		Name:       streamName,
		Subjects:   []string{syncTopic},
		Storage:    nats.FileStorage,
		Duplicates: dedupeWindow,
	})
	require.NoError(t, err)
	return srv.ClientURL()
}

// jetStreamConfig is the watermill-nats JetStream setup every test uses:
// the stream is provisioned by startJetStream, and TrackMsgId sends each
// message UUID as Nats-Msg-Id so JetStream drops a republished duplicate.
func jetStreamConfig(durable string) wmnats.JetStreamConfig {
	return wmnats.JetStreamConfig{
		TrackMsgId:    true,
		DurablePrefix: durable,
		SubscribeOptions: []nats.SubOpt{
			nats.DeliverAll(),
			nats.AckExplicit(),
			nats.AckWait(5 * time.Second), // redeliver soon what a killed daemon never acked
		},
	}
}

// newPublisher returns a watermill publisher on url, closed when the test ends.
func newPublisher(t *testing.T, url string) *wmnats.Publisher {
	t.Helper()
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{
		URL:       url,
		JetStream: jetStreamConfig(""),
	}, watermill.NopLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

// streamMessages returns how many messages the stream holds.
func streamMessages(t *testing.T, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	info, err := js.StreamInfo(streamName)
	require.NoError(t, err)
	return info.State.Msgs
}
