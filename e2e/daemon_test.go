package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/syncbreaker/syncbreaker"
)

// The daemon is this test binary re-executed with these variables set.
const (
	envDaemon    = "SYNCBREAKER_E2E_DAEMON"     // "1" runs daemonMain instead of the tests
	envNATSURL   = "SYNCBREAKER_E2E_NATS_URL"   // the JetStream server
	envServerURL = "SYNCBREAKER_E2E_SERVER_URL" // the HTTP backend the daemon ships to
	envStore     = "SYNCBREAKER_E2E_STORE"      // the spill file

	// daemonDurable names the daemon's durable JetStream consumer, so a
	// restarted daemon resumes where the previous one stopped.
	daemonDurable = "daemon"
	// idempotencyHeader carries the message UUID to the backend.
	idempotencyHeader = "Idempotency-Key"
	// readyLine is what the daemon prints once it consumes messages.
	readyLine = "daemon ready"
)

// daemonMain is the daemon process: it consumes sync messages from
// JetStream and posts each to the backend through the breaker's
// middleware; spilled payloads are republished to JetStream. It stops
// when its standard input closes and returns the exit status.
func daemonMain() int {
	if err := runDaemon(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

func runDaemon(stdin io.Reader, stdout io.Writer) (err error) {
	natsURL, serverURL, storePath := os.Getenv(envNATSURL), os.Getenv(envServerURL), os.Getenv(envStore)
	logger := watermill.NopLogger{}

	cfg := jetStreamConfig(daemonDurable)
	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:            natsURL,
		CloseTimeout:   5 * time.Second,
		AckWaitTimeout: 5 * time.Second,
		JetStream:      cfg,
	}, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sub.Close()) }()
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: natsURL, JetStream: cfg}, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, pub.Close()) }()

	store, err := syncbreaker.OpenJSONLStore(storePath, syncbreaker.StoreConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	republisher, err := syncbreaker.NewRepublisher(pub, syncTopic, syncbreaker.RepublisherConfig{Rate: 500, Burst: 20})
	if err != nil {
		return err
	}
	breaker, err := syncbreaker.New(syncbreaker.Config{
		FailureThreshold: 3,
		ResetInterval:    300 * time.Millisecond,
		MaxResetInterval: 2 * time.Second,
	}, store, republisher)
	if err != nil {
		return err
	}

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, logger)
	if err != nil {
		return err
	}
	handle := breaker.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		return nil, post(msg.Context(), client, serverURL, msg)
	})
	router.AddConsumerHandler("sync-to-server", syncTopic, sub, func(msg *message.Message) error {
		_, err := handle(msg)
		return err
	})
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-routerDone:
		return err
	}

	ctx, stop := context.WithCancel(context.Background())
	breakerDone := make(chan error, 1)
	go func() { breakerDone <- breaker.Run(ctx) }()
	fmt.Fprintln(stdout, readyLine)

	_, _ = io.Copy(io.Discard, bufio.NewReader(stdin)) // until the parent closes stdin
	stop()
	err = <-breakerDone
	return errors.Join(err, router.Close(), <-routerDone)
}

// post ships one payload to the backend.
func post(ctx context.Context, client *http.Client, url string, msg *message.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg.Payload))
	if err != nil {
		return err
	}
	req.Header.Set(idempotencyHeader, msg.UUID)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("backend answered %s", resp.Status)
	}
	return nil
}

// consumerSettled reports whether the daemon's durable consumer has acked
// every message in the stream: each was then sent, or is in the spill file.
func consumerSettled(js nats.JetStreamContext) (bool, error) {
	stream, err := js.StreamInfo(streamName)
	if err != nil {
		return false, err
	}
	info, err := js.ConsumerInfo(streamName, daemonDurable)
	if err != nil {
		return false, err
	}
	return info.NumAckPending == 0 && info.AckFloor.Stream >= stream.State.LastSeq, nil
}
