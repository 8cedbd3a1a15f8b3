// Package syncbreakerotel reports a syncbreaker Breaker and JSONLStore as
// OpenTelemetry metrics. It is a module of its own, so that importers of
// syncbreaker never download OpenTelemetry; it depends on the OpenTelemetry
// metric API only, and the daemon picks the SDK and the exporter.
//
//	reg, err := syncbreakerotel.Register(meterProvider, breaker, store,
//		syncbreakerotel.Config{Topic: republisher.Topic()})
//	if err != nil { return err }
//	defer reg.Unregister()
//
// Register creates asynchronous instruments and one callback over all of
// them: each collection reads Breaker.Stats and JSONLStore.Stats once, and
// nothing is counted on the breaker's hot path. Unregistering stops the
// observations.
//
// # Instruments
//
// Names and units follow the OpenTelemetry semantic conventions: counters
// are plural in a curly-brace unit, UpDownCounters are not pluralized,
// bytes are "By" and seconds "s". Counters are monotonic (cumulative since
// the breaker was made or the store opened); UpDownCounters are additive
// across breakers and stores (summing them over a fleet means something);
// gauges are not.
//
//	name                                     kind           unit       value
//	syncbreaker.circuit.state                UpDownCounter  {circuit}  1 for the state the circuit is in, 0 for the other two (syncbreaker.circuit.state)
//	syncbreaker.circuit.consecutive_failures Gauge          {failure}  Stats.ConsecutiveFailures: failures in a row while closed
//	syncbreaker.circuit.opens                Counter        {open}     Stats.Opens: transitions to open
//	syncbreaker.spilled.records              Counter        {record}   Stats.Spilled: payloads the breaker appended to the store
//	syncbreaker.spill.errors                 Counter        {error}    Stats.SpillErrors: appends that failed (the caller kept the payload)
//	syncbreaker.republished.records          Counter        {record}   Stats.Republished: records republished and removed from the store
//	syncbreaker.republish.errors             Counter        {error}    Stats.RepublishErrors: Republish calls that failed
//	syncbreaker.replays                      Counter        {replay}   Stats.Replays: replays started by RetryPending or Run
//	syncbreaker.settle.timeouts              Counter        {timeout}  Stats.SettleTimeouts: republished messages not settled in time (they stay pending)
//	syncbreaker.republish.pace               Gauge          {record}/s Stats.Pace: the adaptive republish pace, or the fixed Rate (not observed when unpaced)
//	syncbreaker.republish.window             Gauge          {record}   Stats.Window: records a replay may keep in flight while closed
//	syncbreaker.pending.count                UpDownCounter  {record}   StoreStats.PendingRecords: records pending in the store
//	syncbreaker.pending.size                 UpDownCounter  By         StoreStats.PendingBytes: their bytes in the store's files
//	syncbreaker.pending.oldest_age           Gauge          s          StoreStats.OldestAge: how long the oldest pending record has waited, 0 if none
//	syncbreaker.quarantined.lines            Counter        {line}     StoreStats.Quarantined: unreadable lines moved to the quarantine file
//	syncbreaker.dead_lettered.records        Counter        {record}   StoreStats.DeadLettered: records moved to the dead-letter file
//	syncbreaker.rejected.appends             Counter        {append}   StoreStats.Rejected*: appends the store refused, by error.type
//	syncbreaker.sync.errors                  Counter        {error}    StoreStats.SyncErrors: failed fsyncs of the active file
//
// The first eleven observe the Breaker, the last seven the JSONLStore; a nil
// one is not observed. syncbreaker.republished.records grows when a replay
// returns, by the records it republished, and the pending figures drop
// when a replay has settled a whole segment of the store: neither moves
// record by record during a long drain.
//
// # Attributes
//
//	syncbreaker.store.name      every instrument: the base name of the store's path ("sync-pending.jsonl"), or Config.StoreName
//	messaging.destination.name  every instrument: Config.Topic, the topic records are republished to
//	syncbreaker.circuit.state   syncbreaker.circuit.state: "closed", "open", "half_open"
//	error.type                  syncbreaker.rejected.appends: "full" (MaxBytes), "no_space" (ENOSPC), "too_large" (MaxPayloadBytes)
//
// An attribute without a value (no store and no Config.StoreName, no
// Config.Topic) is left out. No attribute carries payload content or a
// full path.
package syncbreakerotel
