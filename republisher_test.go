package syncbreaker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/mocks"
)

const testTopic = "sync"

// testRecords returns n records with distinct IDs and payloads.
func testRecords(n int) []syncbreaker.Record {
	enqueued := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	recs := make([]syncbreaker.Record, n)
	for i := range recs {
		recs[i] = syncbreaker.Record{
			ID:         fmt.Sprintf("rec-%07d", i),
			Payload:    []byte(fmt.Sprintf(`{"cmd":"echo %d"}`, i)),
			EnqueuedAt: enqueued.Add(time.Duration(i) * time.Second),
			Attempts:   i % 3,
		}
	}
	return recs
}

// newTestRepublisher builds a republisher and fails the test on error.
func newTestRepublisher(t *testing.T, pub message.Publisher, cfg syncbreaker.RepublisherConfig) *syncbreaker.TopicRepublisher {
	t.Helper()
	r, err := syncbreaker.NewRepublisher(pub, testTopic, cfg)
	require.NoError(t, err)
	return r
}

// newGoChannel returns a GoChannel closed when the test ends.
func newGoChannel(t *testing.T, cfg gochannel.Config) *gochannel.GoChannel {
	t.Helper()
	ch := gochannel.NewGoChannel(cfg, watermill.NopLogger{})
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func TestNewRepublisherValidatesConfig(t *testing.T) {
	pub := mocks.NewPublisher(t)
	tests := []struct {
		name    string
		pub     message.Publisher
		topic   string
		cfg     syncbreaker.RepublisherConfig
		wantErr string
	}{
		{name: "zero config", pub: pub, topic: testTopic},
		{name: "pacing off", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(1)}},
		{name: "all set", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Rate: 0.5, Burst: 1, MaxInFlight: 8}},
		{name: "nil publisher", topic: testTopic, wantErr: "publisher is nil"},
		{name: "empty topic", pub: pub, wantErr: "topic is empty"},
		{name: "negative rate", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Rate: -1}, wantErr: "Rate"},
		{name: "NaN rate", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Rate: math.NaN()}, wantErr: "Rate"},
		{name: "negative infinite rate", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(-1)}, wantErr: "Rate"},
		{name: "negative burst", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{Burst: -1}, wantErr: "Burst"},
		{name: "negative in flight", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{MaxInFlight: -1}, wantErr: "MaxInFlight"},
		{name: "negative settle timeout", pub: pub, topic: testTopic, cfg: syncbreaker.RepublisherConfig{SettleTimeout: -time.Second}, wantErr: "SettleTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := syncbreaker.NewRepublisher(tt.pub, tt.topic, tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, testTopic, r.Topic())
				return
			}
			require.Error(t, err)
			assert.Nil(t, r)
			assert.ErrorIs(t, err, syncbreaker.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: "), "error %q lacks the package prefix", err)
			assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "error %q repeats the package prefix", err)
		})
	}
}

func TestRepublishThroughGoChannel(t *testing.T) {
	ch := newGoChannel(t, gochannel.Config{})
	msgs, err := ch.Subscribe(t.Context(), testTopic)
	require.NoError(t, err)

	var prepared atomic.Int32
	r := newTestRepublisher(t, ch, syncbreaker.RepublisherConfig{
		Rate:     math.Inf(1),
		Metadata: map[string]string{"source": "spill"},
		Prepare: func(msg *message.Message, rec syncbreaker.Record) {
			prepared.Add(1)
			msg.Metadata.Set("record_size", strconv.Itoa(len(rec.Payload)))
		},
	})

	recs := testRecords(3)
	recs[1].Payload = []byte{0x00, 0xff, '\n', 0xfe} // not JSON, not UTF-8: must survive byte-exact
	recs[2].Payload = []byte{}
	for _, rec := range recs {
		require.NoError(t, r.Republish(t.Context(), rec))
	}

	// A default GoChannel delivers from one goroutine per message, so the
	// order is not guaranteed: match by UUID.
	got := make(map[string]*message.Message, len(recs))
	for len(got) < len(recs) {
		select {
		case msg := <-msgs:
			msg.Ack()
			got[msg.UUID] = msg
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d records reached the consumer", len(got), len(recs))
		}
	}
	for _, rec := range recs {
		msg, ok := got[rec.ID]
		if !assert.True(t, ok, "no message with UUID %s (the record ID)", rec.ID) {
			continue
		}
		assert.Equal(t, len(rec.Payload), len(msg.Payload))
		assert.True(t, string(rec.Payload) == string(msg.Payload), "payload of %s differs", rec.ID)
		assert.Equal(t, "true", msg.Metadata.Get(syncbreaker.MetadataRepublished))
		assert.Equal(t, rec.EnqueuedAt.Format(time.RFC3339Nano), msg.Metadata.Get(syncbreaker.MetadataEnqueuedAt))
		assert.Equal(t, strconv.Itoa(rec.Attempts), msg.Metadata.Get(syncbreaker.MetadataAttempts))
		assert.Equal(t, "spill", msg.Metadata.Get("source"))
		assert.Equal(t, strconv.Itoa(len(rec.Payload)), msg.Metadata.Get("record_size"))
	}
	assert.EqualValues(t, len(recs), prepared.Load())
}

// The record is the republisher's own (PendingStore.Replay hands out
// payloads the callback owns), so the message carries it without a copy.
func TestRepublishHandsThePayloadOnWithoutCopying(t *testing.T) {
	pub := mocks.NewPublisher(t)
	var published *message.Message
	pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(_ string, msgs ...*message.Message) error {
		published = msgs[0]
		return nil
	}).Once()
	r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{})

	rec := testRecords(1)[0]
	require.NoError(t, r.Republish(t.Context(), rec))
	require.NotEmpty(t, published.Payload)
	assert.Same(t, &rec.Payload[0], &published.Payload[0])
}

func TestRepublishWithMockPublisher(t *testing.T) {
	errBroker := errors.New("broker unavailable")
	tests := []struct {
		name       string
		publishErr error
	}{
		{name: "published"},
		{name: "publish fails", publishErr: errBroker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := testRecords(1)[0]
			rec.Payload = []byte("secret-token-123")
			pub := mocks.NewPublisher(t)
			pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(topic string, msgs ...*message.Message) error {
				assert.Equal(t, testTopic, topic)
				require.Len(t, msgs, 1)
				assert.Equal(t, rec.ID, msgs[0].UUID)
				return tt.publishErr
			}).Once()
			r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{})

			err := r.Republish(t.Context(), rec)
			if tt.publishErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.publishErr)
			assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: "), "error %q lacks the package prefix", err)
			assert.Contains(t, err.Error(), rec.ID)
			assert.NotContains(t, err.Error(), string(rec.Payload), "a payload leaked into an error")
		})
	}
}

func TestRepublishRejectsRecordWithoutID(t *testing.T) {
	r := newTestRepublisher(t, mocks.NewPublisher(t), syncbreaker.RepublisherConfig{})
	err := r.Republish(t.Context(), syncbreaker.Record{Payload: []byte("x")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no ID")
}

func TestRepublishPacing(t *testing.T) {
	tests := []struct {
		name  string
		cfg   syncbreaker.RepublisherConfig
		n     int
		want  time.Duration
		sizes int
	}{
		{name: "defaults", n: 1010, want: 10 * time.Second}, // (1010 - 10) / 100 per second
		{name: "rate 50 burst 1", cfg: syncbreaker.RepublisherConfig{Rate: 50, Burst: 1}, n: 101, want: 2 * time.Second},
		{name: "rate 2 burst 4", cfg: syncbreaker.RepublisherConfig{Rate: 2, Burst: 4}, n: 10, want: 3 * time.Second},
		{name: "within burst", cfg: syncbreaker.RepublisherConfig{Rate: 1, Burst: 20}, n: 20, want: 0},
		{name: "unpaced", cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(1)}, n: 5000, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var published atomic.Int64
				pub := mocks.NewPublisher(t)
				pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(string, ...*message.Message) error {
					published.Add(1)
					return nil
				}).Times(tt.n)
				r := newTestRepublisher(t, pub, tt.cfg)

				start := time.Now()
				for _, rec := range testRecords(tt.n) {
					require.NoError(t, r.Republish(t.Context(), rec))
				}
				assert.Equal(t, tt.want, time.Since(start))
				assert.EqualValues(t, tt.n, published.Load())
			})
		})
	}
}

// A caller whose context ends while it waits for a pacing slot hands the
// slot back (the next caller is due one interval after the last publish,
// not two), and an idle republisher refills its whole burst.
func TestRepublishPacingSlotReturnedAndRefilled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := mocks.NewPublisher(t)
		pub.EXPECT().Publish(testTopic, mock.Anything).Return(nil).Times(5)
		r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{Rate: 1, Burst: 3})
		recs := testRecords(6)
		for _, rec := range recs[:3] {
			require.NoError(t, r.Republish(t.Context(), rec))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		assert.Equal(t, context.DeadlineExceeded, r.Republish(ctx, recs[3]))
		start := time.Now()
		require.NoError(t, r.Republish(t.Context(), recs[3]))
		assert.Equal(t, 900*time.Millisecond, time.Since(start), "the cancelled caller gave its slot back")

		time.Sleep(10 * time.Second) // idle: the burst refills
		start = time.Now()
		require.NoError(t, r.Republish(t.Context(), recs[4]))
		assert.Zero(t, time.Since(start))
	})
}

func TestRepublishHonoursContextWhileWaiting(t *testing.T) {
	t.Run("pacing slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pub := mocks.NewPublisher(t)
			pub.EXPECT().Publish(testTopic, mock.Anything).Return(nil).Once()
			r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{Rate: 1, Burst: 1})
			recs := testRecords(2)
			require.NoError(t, r.Republish(t.Context(), recs[0]))

			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := r.Republish(ctx, recs[1])
			// ctx.Err() as is, not wrapped, and nothing published.
			assert.Equal(t, context.DeadlineExceeded, err)
			assert.Equal(t, 300*time.Millisecond, time.Since(start))
		})
	})
	t.Run("in-flight slot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			pub := mocks.NewPublisher(t)
			pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(string, ...*message.Message) error {
				<-release
				return nil
			}).Once()
			r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{Rate: math.Inf(1), MaxInFlight: 1})
			recs := testRecords(2)

			done := make(chan error, 1)
			go func() { done <- r.Republish(t.Context(), recs[0]) }()
			synctest.Wait() // the first Publish holds the only slot

			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				time.Sleep(time.Second)
				cancel()
			}()
			assert.Equal(t, context.Canceled, r.Republish(ctx, recs[1]))
			close(release)
			assert.NoError(t, <-done)
		})
	})
	t.Run("already cancelled", func(t *testing.T) {
		r := newTestRepublisher(t, mocks.NewPublisher(t), syncbreaker.RepublisherConfig{Rate: math.Inf(1)})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.Equal(t, context.Canceled, r.Republish(ctx, testRecords(1)[0]))
	})
}

func TestRepublishBoundsConcurrentPublishes(t *testing.T) {
	tests := []struct {
		name        string
		maxInFlight int
		callers     int
		wantPeak    int64
	}{
		{name: "default keeps one", callers: 6, wantPeak: 1},
		{name: "three", maxInFlight: 3, callers: 9, wantPeak: 3},
		{name: "more slots than callers", maxInFlight: 10, callers: 4, wantPeak: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var inFlight, peak atomic.Int64
				pub := mocks.NewPublisher(t)
				pub.EXPECT().Publish(testTopic, mock.Anything).RunAndReturn(func(string, ...*message.Message) error {
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(time.Second) // a publisher that waits for its broker's ack
					inFlight.Add(-1)
					return nil
				}).Times(tt.callers)
				r := newTestRepublisher(t, pub, syncbreaker.RepublisherConfig{Rate: math.Inf(1), MaxInFlight: tt.maxInFlight})

				var wg sync.WaitGroup
				for _, rec := range testRecords(tt.callers) {
					wg.Go(func() { assert.NoError(t, r.Republish(t.Context(), rec)) })
				}
				wg.Wait()
				assert.Equal(t, tt.wantPeak, peak.Load())
			})
		})
	}
}

// TestRepublishBacklogKeepsGoroutinesBounded republishes a backlog through a
// real GoChannel with a consumer and counts goroutines after every publish.
// Unpaced, a default GoChannel leaves two goroutines per message its
// consumer has not acked yet; paced or with BlockPublishUntilSubscriberAck
// the count must stay near where it started. The bound leaves room for
// goroutines of the GoChannel that have delivered their message but not
// exited yet on a busy machine; unpaced, the count reaches thousands.
func TestRepublishBacklogKeepsGoroutinesBounded(t *testing.T) {
	const (
		records = 20_000
		bound   = 200 // extra goroutines allowed over the baseline
	)
	tests := []struct {
		name    string
		channel gochannel.Config
		cfg     syncbreaker.RepublisherConfig
		callers int
	}{
		{
			name:    "default GoChannel paced",
			cfg:     syncbreaker.RepublisherConfig{Rate: 1000, Burst: 50},
			callers: 1,
		},
		{
			name:    "blocking GoChannel unpaced",
			channel: gochannel.Config{BlockPublishUntilSubscriberAck: true},
			cfg:     syncbreaker.RepublisherConfig{Rate: math.Inf(1), MaxInFlight: 4},
			callers: 8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ch := gochannel.NewGoChannel(tt.channel, watermill.NopLogger{})
				msgs, err := ch.Subscribe(t.Context(), testTopic)
				require.NoError(t, err)
				seen := make(map[string]bool, records)
				consumed := make(chan struct{})
				baseline := runtime.NumGoroutine()
				go func() {
					defer close(consumed)
					for msg := range msgs {
						seen[msg.UUID] = true
						msg.Ack()
						if len(seen) == records {
							return
						}
					}
				}()

				r := newTestRepublisher(t, ch, tt.cfg)
				var peak atomic.Int64
				var next atomic.Int64
				recs := testRecords(records)
				var wg sync.WaitGroup
				for range tt.callers {
					wg.Go(func() {
						for i := next.Add(1) - 1; i < records; i = next.Add(1) - 1 {
							if !assert.NoError(t, r.Republish(t.Context(), recs[i])) {
								return
							}
							n := int64(runtime.NumGoroutine())
							for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
							}
						}
					})
				}
				wg.Wait()
				<-consumed
				require.NoError(t, ch.Close())

				assert.Len(t, seen, records, "every record must reach the consumer")
				extra := int(peak.Load()) - baseline
				t.Logf("baseline %d goroutines, peak %d (+%d) over %d records", baseline, peak.Load(), extra, records)
				assert.LessOrEqual(t, extra, bound, "goroutines grew with the backlog")
			})
		})
	}
}

// BenchmarkRepublishBacklog republishes a 1,000,000-record backlog through a
// GoChannel with a consumer and reports the peak goroutine count and heap.
// Not run in CI; run it with:
//
//	go test -run '^$' -bench RepublishBacklog -benchtime 1x .
func BenchmarkRepublishBacklog(b *testing.B) {
	tests := []struct {
		name    string
		records int
		channel gochannel.Config
		cfg     syncbreaker.RepublisherConfig
	}{
		{name: "blocking GoChannel unpaced", records: 1_000_000, channel: gochannel.Config{BlockPublishUntilSubscriberAck: true}, cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(1)}},
		{name: "default GoChannel at 50k per second", records: 1_000_000, cfg: syncbreaker.RepublisherConfig{Rate: 50_000, Burst: 100}},
		// The failure mode pacing exists for, on a smaller backlog.
		{name: "default GoChannel unpaced", records: 50_000, cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(1)}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			var peakGoroutines, peakHeap uint64
			for b.Loop() {
				g, h := republishBacklog(b, tt.channel, tt.cfg, tt.records)
				peakGoroutines, peakHeap = max(peakGoroutines, g), max(peakHeap, h)
			}
			b.ReportMetric(float64(peakGoroutines), "peak-goroutines")
			b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(tt.records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// republishBacklog republishes n records through a fresh GoChannel with one
// consumer and returns the peak goroutine count and heap bytes it saw. The
// records are made one at a time, as a store's Replay hands them out, so the
// heap figure is the pipeline's, not the backlog's.
func republishBacklog(b *testing.B, chCfg gochannel.Config, cfg syncbreaker.RepublisherConfig, n int) (goroutines, heap uint64) {
	b.Helper()
	ch := gochannel.NewGoChannel(chCfg, watermill.NopLogger{})
	defer func() { _ = ch.Close() }()
	msgs, err := ch.Subscribe(context.Background(), testTopic)
	if err != nil {
		b.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		seen := 0
		for msg := range msgs {
			msg.Ack()
			if seen++; seen == n {
				return
			}
		}
	}()
	r, err := syncbreaker.NewRepublisher(ch, testTopic, cfg)
	if err != nil {
		b.Fatal(err)
	}

	sample := []metrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/memory/classes/heap/objects:bytes"}}
	for i := range n {
		rec := syncbreaker.Record{ID: "rec-" + strconv.Itoa(i), Payload: []byte(`{"cmd":"echo ` + strconv.Itoa(i) + `"}`), EnqueuedAt: time.Now()}
		if err := r.Republish(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 0 {
			metrics.Read(sample)
			goroutines = max(goroutines, sample[0].Value.Uint64())
			heap = max(heap, sample[1].Value.Uint64())
		}
	}
	<-consumed
	return goroutines, heap
}
