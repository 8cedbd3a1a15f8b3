package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The stand-in backend accepts each payload once by its idempotency key (the
// message UUID), so a republished repeat is counted as a duplicate, not as
// a second delivery; while down it refuses everything.
func TestSyncServerDropsRepeatsByIdempotencyKey(t *testing.T) {
	srv := newSyncServer("run-1", 0)
	post := func(key, body string) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/sync", strings.NewReader(body))
		if key != "" {
			req.Header.Set(idempotencyHeader, key)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	first := `{"run":"run-1","seq":0,"commands":["ls"]}`
	require.Equal(t, http.StatusNoContent, post("uuid-a", first))
	require.Equal(t, http.StatusNoContent, post("uuid-a", first), "a repeat is acked")
	require.Equal(t, http.StatusNoContent, post("uuid-b", `{"run":"run-1","seq":1}`))
	require.Equal(t, http.StatusNoContent, post("uuid-c", `{"run":"run-0","seq":0}`))
	require.Equal(t, http.StatusBadRequest, post("", first), "no idempotency key")
	srv.down.Store(true)
	require.Equal(t, http.StatusServiceUnavailable, post("uuid-d", `{"run":"run-1","seq":2}`))

	c := srv.counts(3)
	assert.Equal(t, 2, c.unique)
	assert.Equal(t, 1, c.duplicates)
	assert.Equal(t, 1, c.earlier)
	assert.Equal(t, 1, c.rejected)
	assert.Equal(t, []int{2}, c.missing)
}
