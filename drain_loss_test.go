package syncbreaker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// Drain-loss tests. A store is seeded with numbered
// payloads, then drained by a daemon wired as the first user wires it (a
// default GoChannel shared with fresh traffic, one goroutine ranging over
// the subscription and calling Settle) or through a watermill router with
// Breaker.Middleware, while the drain is stopped, killed, interrupted by an
// outage or refused in part. Whatever happens, every payload that was
// durably in the store must reach the fake server or still be pending;
// duplicates are allowed and reported.
//
// The same daemon runs in the test process and, for the kill -9 test
// (drain_loss_kill_test.go), in a child process (TestMain sees
// lossChildEnv) that reports what its server accepted on stdout.

const (
	lossChildEnv = "SYNCBREAKER_LOSS_CHILD" // the wiring of a child daemon
	lossStoreEnv = "SYNCBREAKER_LOSS_STORE"
	lossSeedEnv  = "SYNCBREAKER_LOSS_SEED"
	lossTopic    = "sync"

	// Settings small enough for a test: a republished message is settled
	// within milliseconds, so a timeout means something is wrong.
	lossSettleTimeout = 3 * time.Second
	lossResetInterval = 100 * time.Millisecond
	// A child's is shorter, so that its outage is over, and its circuit
	// half-open again, within the life the parent gives it.
	lossChildResetInterval = 50 * time.Millisecond
	lossRate               = 2000
	lossThreshold          = 3
	// Seeded payloads are numbered from 0; fresh traffic of life (or
	// child) k from k*lossFreshSpan, so every number stays unique.
	lossFreshSpan = 1_000_000
	lossFreshTick = 10 * time.Millisecond
	lossDeadline  = 60 * time.Second
)

type lossWiring string

const (
	// wiringLoop is the first user's processor loop, without a router.
	wiringLoop lossWiring = "loop"
	// wiringRouter is a watermill router with Breaker.Middleware.
	wiringRouter lossWiring = "router"
)

var lossWirings = []lossWiring{wiringLoop, wiringRouter}

// lossPayload is payload seq: self-identifying JSON of varying length;
// every third one ends with a newline, so the store keeps it base64
// rather than inline and both encodings are checked byte for byte.
func lossPayload(seq int) []byte {
	p := fmt.Appendf(nil, `{"seq":%d,"cmd":"history %s"}`, seq, strings.Repeat("x", seq%97))
	if seq%3 == 0 {
		p = append(p, '\n')
	}
	return p
}

// lossSeq returns the number of payload p, and false unless p is
// byte-exact what lossPayload made, or the first user's envelope around a
// payload that decodes to what lossPayload made (its handler spills a
// re-marshalled copy, not the bytes it received).
func lossSeq(p []byte) (int, bool) {
	var env firstUserEnvelope
	if json.Unmarshal(p, &env) == nil && env.Type != "" {
		seq, ok := lossSeqDecoded(env.Payload)
		return seq, ok && env.Type == "sync"
	}
	var v struct{ Seq *int }
	if json.Unmarshal(p, &v) != nil || v.Seq == nil {
		return 0, false
	}
	return *v.Seq, bytes.Equal(p, lossPayload(*v.Seq))
}

// lossSeqDecoded is lossSeq comparing decoded JSON, not bytes.
func lossSeqDecoded(p []byte) (int, bool) {
	var v struct{ Seq *int }
	if json.Unmarshal(p, &v) != nil || v.Seq == nil {
		return 0, false
	}
	var got, want bytes.Buffer
	if json.Compact(&got, p) != nil || json.Compact(&want, lossPayload(*v.Seq)) != nil {
		return 0, false
	}
	return *v.Seq, bytes.Equal(got.Bytes(), want.Bytes())
}

// lossSink receives what a daemon observes. The test's ledger implements
// it in process; a child prints it for the parent's ledger.
type lossSink interface {
	// delivered: the server accepted payload seq, from a message carrying
	// attempts as MetadataAttempts ("" for fresh traffic).
	delivered(seq int, attempts string)
	// durable: an Append of payload seq returned nil.
	durable(seq int)
	// corrupt: a payload was not byte-exact what was appended.
	corrupt(where string)
	// acked: the daemon acked fresh message seq (the first user's loop):
	// from then on the bus no longer has it, so it must be delivered or
	// durable.
	acked(seq int)
	// gaveUp: the first user's consumer dropped fresh message seq after
	// its redeliveries ("Max retries reached").
	gaveUp(seq int)
	// published: fresh sync message seq went onto the first user's bus.
	published(seq int)
}

// lossServer is the fake server the daemon sends to: a few milliseconds a
// send, down on demand, and refusing every rejectEvery-th republished
// payload the first time it sees it.
type lossServer struct {
	sink        lossSink
	down        atomic.Bool
	rejectEvery int
	firstUser   bool // posts are payloads out of the first user's envelope; some get a 4xx

	mu       sync.Mutex
	rejected map[int]bool
}

func (s *lossServer) send(msg *message.Message) error {
	time.Sleep(time.Millisecond + rand.N(2*time.Millisecond))
	seq, ok := lossSeq(msg.Payload)
	if !ok && s.firstUser {
		seq, ok = lossSeqDecoded(msg.Payload) // the payload out of a re-marshalled envelope
	}
	if !ok {
		s.sink.corrupt("delivered")
		return Permanent(errors.New("malformed payload"))
	}
	if s.down.Load() {
		return errors.New("server down")
	}
	if s.refuses(seq) {
		return Permanent(errors.New("server answered 400")) // as the first user's adapter marks a 4xx
	}
	if s.rejectEvery > 0 && msg.Metadata.Get(MetadataRepublished) == "true" && seq%s.rejectEvery == 0 {
		s.mu.Lock()
		first := !s.rejected[seq]
		if first {
			s.rejected[seq] = true
		}
		s.mu.Unlock()
		if first {
			return errors.New("server refused this one")
		}
	}
	// Reported before the handler settles or acks the message: a kill
	// right after it must count as delivered.
	s.sink.delivered(seq, msg.Metadata.Get(MetadataAttempts))
	return nil
}

// lossSpyStore reports every payload whose Append (or AppendID) returned
// nil: from then on it is durable and must not be lost. It sees the spills
// of both wirings, the processor loop's SaveForRetry and the middleware's.
// Embedding the JSONLStore keeps every optional capability, as a user's
// decorator would.
type lossSpyStore struct {
	*JSONLStore
	sink lossSink
}

func (s lossSpyStore) Append(ctx context.Context, payload []byte) error {
	_, err := s.AppendID(ctx, payload)
	return err
}

func (s lossSpyStore) AppendID(ctx context.Context, payload []byte) (string, error) {
	id, err := s.JSONLStore.AppendID(ctx, payload)
	if err == nil && !isLossNoise(payload) {
		if seq, ok := lossSeq(payload); ok {
			s.sink.durable(seq)
		} else {
			s.sink.corrupt("spilled")
		}
	}
	return id, err
}

type lossDaemonConfig struct {
	wiring        lossWiring
	path          string
	server        *lossServer
	sink          lossSink
	settleTimeout time.Duration
	resetInterval time.Duration
	maxInFlight   int // the republisher's MaxInFlight; 0 for the default (1)
	// freshBase > 0 publishes fresh payloads freshBase, freshBase+1, ...
	// on the bus every lossFreshTick, as the daemon's socket server does.
	freshBase int
}

// lossDaemon is one life of the daemon on a spill file.
type lossDaemon struct {
	cfg     lossDaemonConfig
	store   *JSONLStore
	bus     *gochannel.GoChannel
	router  *message.Router
	breaker *Breaker

	life         context.Context // the handlers' context, ended after the store is closed
	endLife      context.CancelFunc
	stopBreaker  context.CancelFunc
	breakerWG    sync.WaitGroup // Run and the start-up RetryPending
	stopConsumer func() error   // closes the router, or ends the loop's subscription
	consumed     chan struct{}  // closed when the processor loop or router.Run returned

	freshStop chan struct{}
	freshOnce sync.Once
	freshWG   sync.WaitGroup

	// The start-up RetryPending's outcome; read after stop.
	startup    ReplayResult
	startupErr error
}

// startLossDaemon starts a daemon life the way the README wires one: the
// consumer subscribes first (a default GoChannel drops what is published
// to nobody), then the breaker runs and sends what an earlier life left.
func startLossDaemon(cfg lossDaemonConfig) (*lossDaemon, error) {
	store, err := OpenJSONLStore(cfg.path, StoreConfig{})
	if err != nil {
		return nil, err
	}
	d := &lossDaemon{
		cfg:       cfg,
		store:     store,
		bus:       gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}),
		consumed:  make(chan struct{}),
		freshStop: make(chan struct{}),
	}
	d.life, d.endLife = context.WithCancel(context.Background())
	fail := func(err error) (*lossDaemon, error) {
		_ = d.bus.Close()
		_ = d.store.Close()
		d.endLife()
		return nil, err
	}
	rep, err := NewRepublisher(d.bus, lossTopic, RepublisherConfig{SettleTimeout: cfg.settleTimeout, Rate: lossRate, MaxInFlight: cfg.maxInFlight})
	if err != nil {
		return fail(err)
	}
	threshold := lossThreshold
	if cfg.wiring == wiringFirstUser {
		threshold = 0 // the default, 10: more failures than the consumer's redeliveries of one message
	}
	d.breaker, err = New(Config{FailureThreshold: threshold, ResetInterval: cfg.resetInterval},
		lossSpyStore{JSONLStore: store, sink: cfg.sink}, rep)
	if err != nil {
		return fail(err)
	}

	switch cfg.wiring {
	case wiringLoop:
		ctx, cancel := context.WithCancel(d.life)
		d.stopConsumer = func() error { cancel(); return nil }
		messages, err := d.bus.Subscribe(ctx, lossTopic)
		if err != nil {
			return fail(err)
		}
		go d.processorLoop(messages)
	case wiringFirstUser:
		cfg.server.firstUser = true
		ctx, cancel := context.WithCancel(d.life)
		d.stopConsumer = func() error { cancel(); return nil }
		messages, err := d.bus.Subscribe(ctx, lossTopic)
		if err != nil {
			return fail(err)
		}
		go d.firstUserLoop(messages)
	case wiringRouter:
		d.router, err = message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
		if err != nil {
			return fail(err)
		}
		d.stopConsumer = d.router.Close
		d.router.AddMiddleware(d.breaker.Middleware)
		d.router.AddConsumerHandler("sync", lossTopic, d.bus, cfg.server.send)
		runErr := make(chan error, 1)
		go func() {
			defer close(d.consumed)
			runErr <- d.router.Run(d.life)
		}()
		select {
		case <-d.router.Running():
		case err := <-runErr:
			return fail(fmt.Errorf("router stopped before running: %v", err))
		}
	default:
		return fail(fmt.Errorf("unknown wiring %q", cfg.wiring))
	}

	ctx, cancel := context.WithCancel(d.life)
	d.stopBreaker = cancel
	d.breakerWG.Go(func() { d.startup, d.startupErr = d.breaker.RetryPending(ctx) })
	d.breakerWG.Go(func() { _ = d.breaker.Run(ctx) })
	if cfg.freshBase > 0 {
		d.freshWG.Go(d.publishFresh)
	}
	return d, nil
}

// processorLoop is the first user's consumer, as its daemon has it: one
// goroutine, a handler driving the breaker through the four-method
// interface, and Settle for republished messages.
func (d *lossDaemon) processorLoop(messages <-chan *message.Message) {
	defer close(d.consumed)
	breaker, send := d.breaker, d.cfg.server.send
	handle := func(msg *message.Message) error {
		if breaker.IsOpen() {
			return breaker.SaveForRetry(msg.Context(), msg.Payload)
		}
		if err := send(msg); err != nil {
			breaker.RecordFailure()
			return breaker.SaveForRetry(msg.Context(), msg.Payload)
		}
		breaker.RecordSuccess()
		return nil
	}
	for msg := range messages {
		// State, not IsOpen: handle calls IsOpen, once per send, and
		// while half-open each IsOpen that answers false admits a probe.
		if breaker.State() == StateOpen && breaker.Settle(msg, ErrOpen) {
			msg.Ack() // stays pending in place
			continue
		}
		err := handle(msg)
		if breaker.Settle(msg, err) || err == nil {
			msg.Ack()
		} else {
			msg.Nack()
		}
	}
}

func (d *lossDaemon) publishFresh() {
	tick := time.NewTicker(lossFreshTick)
	defer tick.Stop()
	for seq := d.cfg.freshBase; ; seq++ {
		select {
		case <-d.freshStop:
			return
		case <-tick.C:
		}
		payload := lossPayload(seq)
		if d.cfg.wiring == wiringFirstUser {
			payload = firstUserFresh(seq)
		}
		if d.bus.Publish(lossTopic, message.NewMessage(watermill.NewUUID(), payload)) != nil {
			return
		}
		if _, ok := lossSeq(payload); ok && d.cfg.wiring == wiringFirstUser {
			d.cfg.sink.published(seq)
		}
	}
}

// stopFresh stops the fresh traffic; it is safe to call more than once.
func (d *lossDaemon) stopFresh() {
	d.freshOnce.Do(func() { close(d.freshStop) })
	d.freshWG.Wait()
}

// waitDrained waits until the store holds nothing: every record was
// settled and the round that settled it committed.
func (d *lossDaemon) waitDrained() error {
	return lossWaitFor(lossDeadline, "the store to drain", func() bool {
		return d.store.Stats().PendingRecords == 0
	})
}

// stop is an orderly stop in the README's order, after the fresh traffic:
// the breaker (Run and RetryPending return; a record in flight stays
// pending), then the router or the processor loop, then the bus, and the
// store last, since the consumer may spill until it has returned.
func (d *lossDaemon) stop() (Stats, error) {
	d.stopFresh()
	if d.cfg.wiring == wiringFirstUser {
		return d.stopAsTheFirstUser()
	}
	d.stopBreaker()
	d.breakerWG.Wait()
	err := d.stopConsumer()
	<-d.consumed
	err = errors.Join(err, d.bus.Close())
	stats := d.breaker.Stats()
	err = errors.Join(err, d.store.Close())
	d.endLife()
	return stats, err
}

// lossWaitFor polls cond until it holds or timeout passes.
func lossWaitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// lossLedger is the test's account of every payload: which were durable,
// how often each was delivered, and with which attempt count.
type lossLedger struct {
	mu            sync.Mutex
	seeded        int
	isDurable     map[int]bool
	publishedSeqs map[int]bool   // fresh sync messages the first user's bus took
	ackedSeqs     map[int]bool   // fresh messages the first user's loop acked
	gaveUpSeqs    map[int]bool   // and those its consumer dropped
	spills        int            // durable reports after the seeding: the daemons' spills
	accepted      map[int]int    // deliveries per payload
	attempts      map[int]string // MetadataAttempts of a payload's last delivery
	corrupts      []string
}

var _ lossSink = (*lossLedger)(nil)

func newLossLedger() *lossLedger {
	return &lossLedger{isDurable: map[int]bool{}, accepted: map[int]int{}, attempts: map[int]string{},
		ackedSeqs: map[int]bool{}, gaveUpSeqs: map[int]bool{}, publishedSeqs: map[int]bool{}}
}

func (l *lossLedger) delivered(seq int, attempts string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepted[seq]++
	l.attempts[seq] = attempts
}

func (l *lossLedger) durable(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isDurable[seq] = true
	l.spills++
}

func (l *lossLedger) acked(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ackedSeqs[seq] = true
}

func (l *lossLedger) published(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publishedSeqs[seq] = true
}

func (l *lossLedger) gaveUp(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gaveUpSeqs[seq] = true
}

func (l *lossLedger) corrupt(where string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.corrupts = append(l.corrupts, where)
}

// seed appends payloads 0..n-1 to the store at path before any daemon
// runs, so the drain is what is tested.
func (l *lossLedger) seed(t *testing.T, path string, n int, payload func(int) []byte) {
	t.Helper()
	s, err := OpenJSONLStore(path, StoreConfig{Sync: SyncNever}) // Close fsyncs
	require.NoError(t, err)
	for seq := range n {
		require.NoError(t, s.Append(context.Background(), payload(seq)))
	}
	require.NoError(t, s.Close())
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := range n {
		l.isDurable[seq] = true
	}
	l.seeded = n
}

// seededDelivered counts the seeded payloads delivered at least once.
func (l *lossLedger) seededDelivered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for seq := range l.seeded {
		if l.accepted[seq] > 0 {
			n++
		}
	}
	return n
}

// readChild feeds the ledger from a child daemon's stdout until EOF,
// closing ready at its READY line; it returns the child's ERR lines.
func (l *lossLedger) readChild(r io.Reader, ready chan<- struct{}) (errs []string) {
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		kind, arg, _ := strings.Cut(lines.Text(), " ")
		seq, convErr := strconv.Atoi(arg)
		switch {
		case kind == "READY":
			close(ready)
		case kind == "D" && convErr == nil:
			l.delivered(seq, "")
		case kind == "S" && convErr == nil:
			l.durable(seq)
		case kind == "A" && convErr == nil:
			l.acked(seq)
		case kind == "G" && convErr == nil:
			l.gaveUp(seq)
		case kind == "P" && convErr == nil:
			l.published(seq)
		case kind == "X":
			l.corrupt(arg)
		default:
			errs = append(errs, lines.Text())
		}
	}
	return errs
}

// check reads what the store at path still holds once the last daemon has
// stopped, logs the counts and fails the test on a lost, corrupt or
// dead-lettered payload, on anything still pending, and on more than
// maxDuplicates duplicates (negative: no bound).
func (l *lossLedger) check(t *testing.T, path string, maxDuplicates int) {
	t.Helper()
	layout, err := jsonl.Files(path)
	require.NoError(t, err)
	pending := map[int]bool{}
	for _, f := range append(layout.Segments, layout.Active) {
		if f == "" {
			continue
		}
		require.NoError(t, jsonl.ScanFile(f, jsonl.ScanConfig{}, func(e jsonl.ScanEntry) error {
			if isLossNoise(e.Record.Payload) {
				return nil // a decode error's message, on its way to the dead letters
			}
			seq, ok := lossSeq(e.Record.Payload)
			if e.Problem != jsonl.ProblemNone || !ok {
				l.corrupt(fmt.Sprintf("pending in %s line %d (%v)", filepath.Base(f), e.Line, e.Problem))
				return nil
			}
			pending[seq] = true
			return nil
		}))
	}
	// Only what can never be delivered is dead-lettered: a message that
	// does not decode, or a payload the server refuses with a 4xx (the
	// first user's traffic); it is kept there, not lost.
	dead := map[int]bool{}
	if layout.Dead != "" {
		require.NoError(t, jsonl.ScanFile(layout.Dead, jsonl.ScanConfig{}, func(e jsonl.ScanEntry) error {
			if isLossNoise(e.Record.Payload) {
				return nil
			}
			seq, ok := lossSeq(e.Record.Payload)
			assert.True(t, ok && refuses4xx(seq), "dead-lettered: only a payload the server refuses for good (line %d)", e.Line)
			dead[seq] = true
			return nil
		}))
	}
	assert.Empty(t, layout.Quarantine, "nothing is quarantined")

	l.mu.Lock()
	defer l.mu.Unlock()
	var lost []int
	delivered, fresh, duplicates := 0, 0, 0
	for seq := range l.isDurable {
		switch {
		case l.accepted[seq] > 0:
			delivered++
		case dead[seq]:
		case !pending[seq]:
			lost = append(lost, seq)
		}
	}
	for seq, n := range l.accepted {
		duplicates += n - 1
		if !l.isDurable[seq] {
			fresh++ // sent at once, never spilled
		}
	}
	// Fresh messages the first user's loop acked, or gave up on: acked
	// ones must have arrived or be durable; one given up on is lost
	// unless the server refused it for good (a 4xx).
	for seq := range l.ackedSeqs {
		if l.accepted[seq] == 0 && !pending[seq] && !dead[seq] && !l.isDurable[seq] {
			lost = append(lost, seq)
		}
	}
	refused4xx := 0
	for seq := range l.gaveUpSeqs {
		switch {
		case refuses4xx(seq):
			refused4xx++
		case l.accepted[seq] == 0 && !pending[seq] && !l.ackedSeqs[seq]:
			lost = append(lost, seq)
		}
	}
	if len(l.publishedSeqs) > 0 {
		// Published and never settled by the loop: only on the in-memory
		// bus when the process stopped or was killed, gone with it.
		inBus := 0
		for seq := range l.publishedSeqs {
			if !l.ackedSeqs[seq] && !l.gaveUpSeqs[seq] && l.accepted[seq] == 0 && !l.isDurable[seq] {
				inBus++
			}
		}
		t.Logf("%s: fresh sync messages published %d, acked %d, given up on %d (%d refused with a 4xx), only on the bus at a stop or kill %d; dead-lettered %d refused payloads",
			t.Name(), len(l.publishedSeqs), len(l.ackedSeqs), len(l.gaveUpSeqs), refused4xx, inBus, len(dead))
	}
	slices.Sort(lost)
	t.Logf("%s: durable %d (%d seeded, %d spills); delivered %d of them; duplicates %d; pending %d; lost %d; fresh payloads sent directly %d",
		t.Name(), len(l.isDurable), l.seeded, l.spills, delivered, duplicates, len(pending), len(lost), fresh)
	assert.Empty(t, lost[:min(len(lost), 20)], "durable payloads lost (first 20 of %d)", len(lost))
	assert.Empty(t, l.corrupts, "payloads not byte-exact")
	assert.Empty(t, pending, "the last life drains everything")
	if maxDuplicates >= 0 {
		assert.LessOrEqual(t, duplicates, maxDuplicates, "duplicates")
	}
}

// lossScenario gives each scenario its seeded store, its ledger and a way
// to start daemon lives on it.
type lossScenario struct {
	t      *testing.T
	wiring lossWiring
	path   string
	ledger *lossLedger
	lives  int
	// inFlight is the republisher's MaxInFlight (0: the default, 1).
	inFlight int
	// Totals over the in-process lives.
	settleTimeouts uint64
	opens          uint64
}

func newLossScenario(t *testing.T, wiring lossWiring, seeded int) *lossScenario {
	sc := &lossScenario{
		t:      t,
		wiring: wiring,
		path:   filepath.Join(t.TempDir(), "spill", "sync-pending.jsonl"),
		ledger: newLossLedger(),
	}
	payload := lossPayload
	if wiring == wiringFirstUser {
		payload = func(seq int) []byte { return firstUserEnvelopeOf(lossPayload(seq)) }
	}
	sc.ledger.seed(t, sc.path, seeded, payload)
	return sc
}

// start starts the next in-process life; fresh adds fresh traffic.
func (sc *lossScenario) start(server *lossServer, fresh bool) *lossDaemon {
	sc.t.Helper()
	sc.lives++
	cfg := lossDaemonConfig{
		wiring:        sc.wiring,
		path:          sc.path,
		server:        server,
		sink:          sc.ledger,
		settleTimeout: lossSettleTimeout,
		resetInterval: lossResetInterval,
		maxInFlight:   sc.inFlight,
	}
	if fresh {
		cfg.freshBase = sc.lives * lossFreshSpan
	}
	d, err := startLossDaemon(cfg)
	require.NoError(sc.t, err)
	return d
}

// server returns a fake server reporting to the scenario's ledger.
func (sc *lossScenario) server() *lossServer {
	return &lossServer{sink: sc.ledger, rejected: map[int]bool{}}
}

// waitDelivered waits, in the middle of d's drain, until n seeded
// payloads were delivered, or until d's store is empty: then the drain is
// over, and what has not arrived never will (the check reports it).
func (sc *lossScenario) waitDelivered(d *lossDaemon, n int) {
	sc.t.Helper()
	require.NoError(sc.t, lossWaitFor(lossDeadline, fmt.Sprintf("%d seeded payloads delivered", n), func() bool {
		return sc.ledger.seededDelivered() >= n || d.store.Stats().PendingRecords == 0
	}))
}

// stop stops a life in order and adds up its counters.
func (sc *lossScenario) stop(d *lossDaemon) Stats {
	sc.t.Helper()
	st, err := d.stop()
	require.NoError(sc.t, err)
	sc.settleTimeouts += st.SettleTimeouts
	sc.opens += st.Opens
	return st
}

// drainRest runs a last life, without fresh traffic, until the store is
// empty.
func (sc *lossScenario) drainRest() {
	sc.t.Helper()
	d := sc.start(sc.server(), false)
	require.NoError(sc.t, d.waitDrained())
	sc.stop(d)
}

// TestDrainLossOrderlyStop stops the daemon in order several times in the
// middle of a drain, each time restarting it on the same spill file, and
// lets the last life drain the rest. A stop abandons at most the records
// in flight (MaxInFlight: 1 by default, 4 here too): the consumer may
// still deliver them, and the next life sends them again. So duplicates
// are bounded by the stops times MaxInFlight, plus the settle timeouts,
// whose records are sent again too.
func TestDrainLossOrderlyStop(t *testing.T) {
	seeded, stops := 800, 3
	if testing.Short() {
		seeded, stops = 200, 1
	}
	for _, inFlight := range []int{1, 4} {
		for _, wiring := range lossWirings {
			t.Run(fmt.Sprintf("%s/in-flight=%d", wiring, inFlight), func(t *testing.T) {
				sc := newLossScenario(t, wiring, seeded)
				sc.inFlight = inFlight
				for i := range stops {
					d := sc.start(sc.server(), true)
					sc.waitDelivered(d, (i+1)*seeded/(stops+1))
					sc.stop(d)
				}
				sc.drainRest()
				sc.ledger.check(t, sc.path, stops*inFlight+int(sc.settleTimeouts))
			})
		}
	}
}

// TestDrainLossReopenMidDrain takes the server down in the middle of the
// drain: the failures open the circuit, the round stops between records,
// half-open probes fail for a while, then the server comes back and
// everything arrives. Nothing is stopped mid-drain, so only a settle
// timeout could send a record twice.
func TestDrainLossReopenMidDrain(t *testing.T) {
	seeded := 800
	if testing.Short() {
		seeded = 200
	}
	for _, wiring := range lossWirings {
		t.Run(string(wiring), func(t *testing.T) {
			sc := newLossScenario(t, wiring, seeded)
			server := sc.server()
			d := sc.start(server, true)
			sc.waitDelivered(d, seeded/3)
			server.down.Store(true)
			require.NoError(t, lossWaitFor(lossDeadline, "the circuit to open", func() bool { return d.breaker.Stats().Opens > 0 }))
			time.Sleep(3 * lossResetInterval) // a half-open probe or two meet the outage
			server.down.Store(false)
			d.stopFresh()
			require.NoError(t, d.waitDrained())
			sc.stop(d)
			assert.ErrorIs(t, d.startupErr, ErrOpen, "the opening stopped the start-up round")
			assert.NotZero(t, sc.opens)
			t.Logf("start-up round: %+v; the circuit opened %d times", d.startup, sc.opens)
			sc.ledger.check(t, sc.path, int(sc.settleTimeouts))
		})
	}
}

// TestDrainLossHandlerRejects has the server refuse every 4th republished
// payload once while it takes everything else, so the circuit stays
// closed and the round goes on. Each refused record stays pending in its
// place with its attempt counted (the middleware settles it with the
// error; the loop's handler spills it again with msg.Context(), which
// Settle recognises), so nothing is delivered twice, and it arrives in a
// later round with MetadataAttempts "1".
func TestDrainLossHandlerRejects(t *testing.T) {
	const every = 4
	seeded := 600
	if testing.Short() {
		seeded = 200
	}
	for _, wiring := range lossWirings {
		t.Run(string(wiring), func(t *testing.T) {
			sc := newLossScenario(t, wiring, seeded)
			server := sc.server()
			server.rejectEvery = every
			d := sc.start(server, true)
			sc.waitDelivered(d, seeded/2)
			d.stopFresh()
			require.NoError(t, d.waitDrained())
			st := sc.stop(d)
			t.Logf("start-up round: %+v; %d replays", d.startup, st.Replays)
			sc.ledger.check(t, sc.path, int(sc.settleTimeouts))

			refused := (seeded + every - 1) / every
			assert.Len(t, server.rejected, refused, "every 4th seeded payload was refused once")
			assert.Zero(t, sc.opens, "the circuit stayed closed")
			l := sc.ledger
			l.mu.Lock()
			defer l.mu.Unlock()
			if wiring == wiringLoop {
				// The handler spills each refusal again under
				// msg.Context(): stored first, then found to be its
				// record's and discarded (duplicates 0 above).
				assert.Equal(t, refused, l.spills, "one copy per refusal, discarded")
			} else {
				assert.Zero(t, l.spills, "refused records stay in place, not spilled again")
			}
			for seq := range server.rejected {
				assert.Equal(t, 1, l.accepted[seq], "payload %d delivered once", seq)
				assert.Equal(t, "1", l.attempts[seq], "attempts of payload %d when delivered", seq)
			}
		})
	}
}

// lossChildSink prints what a child daemon observes, one line a write,
// for the parent's ledger: a line is in the pipe before the handler goes
// on, so a kill cannot lose it.
type lossChildSink struct{ mu sync.Mutex }

func (s *lossChildSink) line(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func (s *lossChildSink) delivered(seq int, _ string) { s.line("D %d", seq) }
func (s *lossChildSink) durable(seq int)             { s.line("S %d", seq) }
func (s *lossChildSink) corrupt(where string)        { s.line("X %s", where) }
func (s *lossChildSink) acked(seq int)               { s.line("A %d", seq) }
func (s *lossChildSink) gaveUp(seq int)              { s.line("G %d", seq) }
func (s *lossChildSink) published(seq int)           { s.line("P %d", seq) }

// runLossChild is a daemon life in a child process, killed by the parent
// at a random moment of its drain. Half the lives meet a short outage, so
// rounds also end (and commit) when the circuit opens, and payloads are
// spilled again; the kill may land anywhere in that too.
func runLossChild() int {
	sink := &lossChildSink{}
	seed, err := strconv.Atoi(os.Getenv(lossSeedEnv))
	if err != nil {
		sink.line("ERR seed: %v", err)
		return 1
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 9))
	server := &lossServer{sink: sink}
	d, err := startLossDaemon(lossDaemonConfig{
		wiring:        lossWiring(os.Getenv(lossChildEnv)),
		path:          os.Getenv(lossStoreEnv),
		server:        server,
		sink:          sink,
		settleTimeout: lossSettleTimeout,
		resetInterval: lossChildResetInterval,
		freshBase:     seed * lossFreshSpan,
	})
	if err != nil {
		sink.line("ERR start: %v", err)
		return 1
	}
	sink.line("READY")
	if rng.IntN(2) == 0 {
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		server.down.Store(true)
		time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
		server.down.Store(false)
	}
	time.Sleep(time.Minute) // the parent kills it long before
	sink.line("ERR not killed")
	_, _ = d.stop()
	return 1
}
