package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequeueDead(t *testing.T) {
	t.Parallel()
	path := buildMixedStore(t)
	// A damaged line in the dead-letter file: verify reports it, repair
	// leaves it (the store repairs pending files only), requeue-dead
	// quarantines it.
	f, err := os.OpenFile(path+".dead", os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("{\"broken\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r := pendingctl(t, "verify", path)
	assert.Equal(t, exitProblems, r.code)
	assert.Contains(t, r.stdout, path+".dead:4: offset ")

	r = pendingctl(t, "requeue-dead", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "moved 3 dead-lettered records back to pending\n"+
		"moved 1 damaged line of the dead-letter file to "+path+".quarantine\n", r.stdout)
	assert.NotContains(t, r.stdout+r.stderr, secret)

	r = pendingctl(t, "stat", "--json", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	var st statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.EqualValues(t, 6, st.Pending.Records)
	assert.Equal(t, []attemptCount{{Attempts: 0, Records: 4}, {Attempts: 1, Records: 2}}, st.Pending.Attempts)
	assert.Zero(t, st.Dead.Records)
	assert.Empty(t, st.Files.Dead)
	assert.EqualValues(t, 2, st.Quarantine.Lines)

	r = pendingctl(t, "verify", path)
	assert.Equal(t, exitOK, r.code, r.stdout)

	// Requeued records come after the segments sealed before, and before
	// the active file.
	r = pendingctl(t, "cat", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, catOutput(`{"p":4}`, "p5 "+secret, "dead 1 "+secret, `{"dead":2}`, `{"dead":3}`, `{"p":6}`), r.stdout)

	r = pendingctl(t, "requeue-dead", path)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "moved 0 dead-lettered records back to pending\n", r.stdout)
}
