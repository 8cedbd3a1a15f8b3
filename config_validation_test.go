package syncbreaker_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/syncbreaker/syncbreaker"
	"github.com/syncbreaker/syncbreaker/internal/jsonl"
)

// assertInvalidConfig checks that err rejects field: ErrInvalidConfig (the
// engine's value too, so errors.Is works across layers), the field named,
// the package prefix once.
func assertInvalidConfig(t *testing.T, err error, field string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, syncbreaker.ErrInvalidConfig)
	assert.ErrorIs(t, err, jsonl.ErrInvalidConfig)
	assert.Regexp(t, regexp.MustCompile(`\b`+field+`\b`), err.Error(), "the error names the field")
	assert.True(t, strings.HasPrefix(err.Error(), "syncbreaker: invalid config: "), "%q", err)
	assert.Equal(t, 1, strings.Count(err.Error(), "syncbreaker:"), "%q", err)
}

func TestStoreConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   syncbreaker.StoreConfig
		field string // "" means valid
	}{
		{name: "zero value"},
		{name: "SyncInterval policy", cfg: syncbreaker.StoreConfig{Sync: syncbreaker.SyncInterval, SyncInterval: time.Millisecond}},
		{name: "SyncNever", cfg: syncbreaker.StoreConfig{Sync: syncbreaker.SyncNever}},
		{name: "MaxBytes negative means no limit", cfg: syncbreaker.StoreConfig{MaxBytes: -1}},
		{name: "MaxPayloadBytes at its limit", cfg: syncbreaker.StoreConfig{MaxPayloadBytes: 1 << 30}},
		{name: "all set", cfg: syncbreaker.StoreConfig{MaxBytes: 1 << 20, MaxPayloadBytes: 1 << 10, MaxAttempts: 5, SegmentBytes: 1 << 16}},

		{name: "unknown Sync", cfg: syncbreaker.StoreConfig{Sync: 7}, field: "Sync"},
		{name: "negative Sync", cfg: syncbreaker.StoreConfig{Sync: -1}, field: "Sync"},
		{name: "negative SyncInterval", cfg: syncbreaker.StoreConfig{SyncInterval: -time.Second}, field: "SyncInterval"},
		{name: "negative MaxPayloadBytes", cfg: syncbreaker.StoreConfig{MaxPayloadBytes: -1}, field: "MaxPayloadBytes"},
		{name: "MaxPayloadBytes over 1 GiB", cfg: syncbreaker.StoreConfig{MaxPayloadBytes: 1<<30 + 1}, field: "MaxPayloadBytes"},
		{name: "negative MaxAttempts", cfg: syncbreaker.StoreConfig{MaxAttempts: -1}, field: "MaxAttempts"},
		{name: "negative SegmentBytes", cfg: syncbreaker.StoreConfig{SegmentBytes: -1}, field: "SegmentBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spill")
			s, err := syncbreaker.OpenJSONLStore(filepath.Join(dir, "p.jsonl"), tt.cfg)
			if tt.field == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.cfg.Sync, s.Stats().Sync)
				require.NoError(t, s.Append(t.Context(), []byte(`{"ok":true}`)))
				require.NoError(t, s.Close())
				return
			}
			assert.Nil(t, s)
			assertInvalidConfig(t, err, tt.field)
			_, serr := os.Stat(dir)
			assert.ErrorIs(t, serr, os.ErrNotExist, "an invalid config creates nothing")
		})
	}
	t.Run("empty path", func(t *testing.T) {
		s, err := syncbreaker.OpenJSONLStore("", syncbreaker.StoreConfig{})
		assert.Nil(t, s)
		assertInvalidConfig(t, err, "path")
	})
}

func TestRepublisherConfigValidation(t *testing.T) {
	pub := &nopPublisher{}
	tests := []struct {
		name  string
		cfg   syncbreaker.RepublisherConfig
		field string // "" means valid
	}{
		{name: "zero value"},
		{name: "pacing off", cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(1)}},
		{name: "all set", cfg: syncbreaker.RepublisherConfig{Rate: 0.5, Burst: 1, MaxInFlight: 8, SettleTimeout: time.Minute}},

		{name: "negative Rate", cfg: syncbreaker.RepublisherConfig{Rate: -1}, field: "Rate"},
		{name: "NaN Rate", cfg: syncbreaker.RepublisherConfig{Rate: math.NaN()}, field: "Rate"},
		{name: "negative infinite Rate", cfg: syncbreaker.RepublisherConfig{Rate: math.Inf(-1)}, field: "Rate"},
		{name: "negative Burst", cfg: syncbreaker.RepublisherConfig{Burst: -1}, field: "Burst"},
		{name: "negative MaxInFlight", cfg: syncbreaker.RepublisherConfig{MaxInFlight: -1}, field: "MaxInFlight"},
		{name: "negative SettleTimeout", cfg: syncbreaker.RepublisherConfig{SettleTimeout: -time.Second}, field: "SettleTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := syncbreaker.NewRepublisher(pub, "sync", tt.cfg)
			if tt.field == "" {
				require.NoError(t, err)
				assert.Equal(t, "sync", r.Topic())
				return
			}
			assert.Nil(t, r)
			assertInvalidConfig(t, err, tt.field)
		})
	}
	t.Run("nil publisher", func(t *testing.T) {
		_, err := syncbreaker.NewRepublisher(nil, "sync", syncbreaker.RepublisherConfig{})
		assertInvalidConfig(t, err, "publisher")
	})
	t.Run("empty topic", func(t *testing.T) {
		_, err := syncbreaker.NewRepublisher(pub, "", syncbreaker.RepublisherConfig{})
		assertInvalidConfig(t, err, "topic")
	})
}

func TestBreakerConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   syncbreaker.Config
		field string // "" means valid
	}{
		{name: "zero value"},
		{name: "negative Jitter disables it", cfg: syncbreaker.Config{Jitter: -1}},
		{name: "negative infinite Jitter disables it", cfg: syncbreaker.Config{Jitter: math.Inf(-1)}},
		{name: "Multiplier 1 disables growth", cfg: syncbreaker.Config{Multiplier: 1}},
		{name: "MaxResetInterval equal to ResetInterval", cfg: syncbreaker.Config{ResetInterval: time.Minute, MaxResetInterval: time.Minute}},
		{name: "FailureThreshold at its limit", cfg: syncbreaker.Config{FailureThreshold: math.MaxInt32}},
		{name: "long intervals", cfg: syncbreaker.Config{ResetInterval: 24 * time.Hour * 365, MaxResetInterval: 24 * time.Hour * 365 * 100}},

		{name: "negative FailureThreshold", cfg: syncbreaker.Config{FailureThreshold: -1}, field: "FailureThreshold"},
		{name: "FailureThreshold over MaxInt32", cfg: syncbreaker.Config{FailureThreshold: math.MaxInt32 + 1}, field: "FailureThreshold"},
		{name: "negative ResetInterval", cfg: syncbreaker.Config{ResetInterval: -time.Second}, field: "ResetInterval"},
		{name: "ResetInterval whose default cap overflows", cfg: syncbreaker.Config{ResetInterval: math.MaxInt64 / 4}, field: "ResetInterval"},
		{name: "Multiplier below 1", cfg: syncbreaker.Config{Multiplier: 0.5}, field: "Multiplier"},
		{name: "negative Multiplier", cfg: syncbreaker.Config{Multiplier: -2}, field: "Multiplier"},
		{name: "NaN Multiplier", cfg: syncbreaker.Config{Multiplier: math.NaN()}, field: "Multiplier"},
		{name: "infinite Multiplier", cfg: syncbreaker.Config{Multiplier: math.Inf(1)}, field: "Multiplier"},
		{name: "negative MaxResetInterval", cfg: syncbreaker.Config{MaxResetInterval: -time.Second}, field: "MaxResetInterval"},
		{name: "MaxResetInterval below ResetInterval", cfg: syncbreaker.Config{ResetInterval: time.Hour, MaxResetInterval: time.Minute}, field: "MaxResetInterval"},
		{name: "MaxResetInterval that overflows with jitter", cfg: syncbreaker.Config{MaxResetInterval: math.MaxInt64 - 1}, field: "MaxResetInterval"},
		{name: "Jitter 1", cfg: syncbreaker.Config{Jitter: 1}, field: "Jitter"},
		{name: "NaN Jitter", cfg: syncbreaker.Config{Jitter: math.NaN()}, field: "Jitter"},
		{name: "infinite Jitter", cfg: syncbreaker.Config{Jitter: math.Inf(1)}, field: "Jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := syncbreaker.New(tt.cfg, &memStore{}, &recordingRepublisher{})
			if tt.field == "" {
				require.NoError(t, err)
				require.NotNil(t, b)
				failN(b, 1)
				return
			}
			assert.Nil(t, b)
			assertInvalidConfig(t, err, tt.field)
		})
	}
	t.Run("nil store", func(t *testing.T) {
		_, err := syncbreaker.New(syncbreaker.Config{}, nil, &recordingRepublisher{})
		assertInvalidConfig(t, err, "PendingStore")
	})
	t.Run("nil republisher", func(t *testing.T) {
		_, err := syncbreaker.New(syncbreaker.Config{}, &memStore{}, nil)
		assertInvalidConfig(t, err, "Republisher")
	})
}

// The root's ErrInvalidConfig is the engine's value, not a copy.
func TestErrInvalidConfigIsTheEnginesValue(t *testing.T) {
	assert.True(t, errors.Is(jsonl.ErrInvalidConfig, syncbreaker.ErrInvalidConfig))
	assert.True(t, jsonl.ErrInvalidConfig == syncbreaker.ErrInvalidConfig)
}
