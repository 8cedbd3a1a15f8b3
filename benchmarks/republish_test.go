package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/syncbreaker/syncbreaker"
)

const republishTopic = "sync"

// republishConfig is what a user draining a large backlog into a DEFAULT
// GoChannel would set: a default GoChannel's Publish returns at once and
// parks one goroutine per message until the consumer takes it, so only the
// Rate bounds what piles up, and only if it is below what the consumer
// keeps up with. This benchmark's consumer only acks, and kept up with
// 37,000 to 86,000 messages a second on two busy cores, so 20,000 a second
// leaves it headroom. With a real server behind the consumer, use what the server
// can take (the default, 100 a second, is meant for that).
var republishConfig = syncbreaker.RepublisherConfig{Rate: 20_000, Burst: 100}

// republishSizes: the full suite drains 1,000,000 records; -short 100,000.
func republishSizes() []int {
	if testing.Short() {
		return []int{100_000}
	}
	return []int{1_000_000}
}

// consume acks every message on the topic and closes done after n.
func consume(tb testing.TB, ch *gochannel.GoChannel, n int) (done <-chan struct{}) {
	tb.Helper()
	msgs, err := ch.Subscribe(context.Background(), republishTopic)
	if err != nil {
		tb.Fatal(err)
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		seen := 0
		for msg := range msgs {
			msg.Ack()
			if seen++; seen == n {
				return
			}
		}
	}()
	return d
}

// BenchmarkRepublish drains an n-record backlog of 1 KiB payloads through
// a default GoChannel (gochannel.Config{}) to a consumer that acks, and
// reports the peak goroutine count, the peak live heap and records/s.
//
//	syncbreaker  Breaker.RetryPending: JSONLStore.Replay into a TopicRepublisher
//	             with republishConfig (the baseline)
//	naive        the original: read every line into memory, publish each with a
//	             fresh UUID in a tight loop
func BenchmarkRepublish(b *testing.B) {
	for _, n := range republishSizes() {
		b.Run(fmt.Sprintf("impl=syncbreaker/records=%s", sizeName(n)), func(b *testing.B) {
			src := cachedBacklog(b, n)
			parent := b.TempDir()
			var peakHeap, peakG uint64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				s, err := syncbreaker.OpenJSONLStore(cloneStore(b, src, parent), backlogStoreConfig)
				if err != nil {
					b.Fatal(err)
				}
				ch := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
				done := consume(b, ch, n)
				rp, err := syncbreaker.NewRepublisher(ch, republishTopic, republishConfig)
				if err != nil {
					b.Fatal(err)
				}
				br, err := syncbreaker.New(syncbreaker.Config{}, s, rp)
				if err != nil {
					b.Fatal(err)
				}
				sampler := startPeakSampler()
				b.StartTimer()
				res, err := br.RetryPending(context.Background())
				<-done
				b.StopTimer()
				heap, g := sampler.Stop()
				peakHeap, peakG = max(peakHeap, heap), max(peakG, g)
				if err := errors.Join(err, s.Close(), ch.Close()); err != nil {
					b.Fatal(err)
				}
				if res.Republished != n {
					b.Fatalf("republished %d of %d records", res.Republished, n)
				}
				b.StartTimer()
			}
			reportRepublish(b, n, peakHeap, peakG)
		})
		b.Run(fmt.Sprintf("impl=naive/records=%s", sizeName(n)), func(b *testing.B) {
			files := backlogFiles(b, cachedBacklog(b, n))
			var peakHeap, peakG uint64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				ch := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
				done := consume(b, ch, n)
				sampler := startPeakSampler()
				b.StartTimer()
				got, err := naiveReplay(files, func(line []byte) error {
					return ch.Publish(republishTopic, message.NewMessage(watermill.NewUUID(), line))
				})
				<-done
				b.StopTimer()
				heap, g := sampler.Stop()
				peakHeap, peakG = max(peakHeap, heap), max(peakG, g)
				if err := errors.Join(err, ch.Close()); err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("published %d of %d records", got, n)
				}
				b.StartTimer()
			}
			reportRepublish(b, n, peakHeap, peakG)
		})
	}
}

func reportRepublish(b *testing.B, n int, peakHeap, peakGoroutines uint64) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(peakHeap)/mib, "peak-heap-MiB")
	b.ReportMetric(float64(peakGoroutines), "peak-goroutines")
}
