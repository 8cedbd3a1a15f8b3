package main

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSettler is the breaker as the processor loop sees it: waiting for
// the message (a republished one) or not (fresh traffic).
type fakeSettler struct {
	waiting bool
	settled []error // what Settle was told while waiting
}

func (f *fakeSettler) Settle(_ *message.Message, err error) bool {
	if f.waiting {
		f.settled = append(f.settled, err)
	}
	return f.waiting
}

// TestProcessAcksRepublishedMessagesAndNacksFailedFreshOnes checks the
// processor loop: a republished message is always acked, with its outcome
// settled; a fresh one is nacked only when the handler failed.
func TestProcessAcksRepublishedMessagesAndNacksFailedFreshOnes(t *testing.T) {
	errSpill := errors.New("disk full")
	tests := []struct {
		name        string
		republished bool
		handlerErr  error
		wantHandled bool
		wantSettled []error
		wantAck     bool
	}{
		{name: "fresh, handled", handlerErr: nil, wantHandled: true, wantAck: true},
		{name: "fresh, handler failed", handlerErr: errSpill, wantHandled: true, wantAck: false},
		{name: "republished, handled", republished: true, wantHandled: true, wantSettled: []error{nil}, wantAck: true},
		{name: "republished, handler failed: stays pending", republished: true, handlerErr: errSpill, wantHandled: true, wantSettled: []error{errSpill}, wantAck: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			breaker := &fakeSettler{waiting: tt.republished}
			handled := false
			msg := message.NewMessage("id-1", []byte(`{"seq":1}`))
			messages := make(chan *message.Message, 1)
			messages <- msg
			close(messages)

			process(messages, breaker, func(*message.Message) error {
				handled = true
				return tt.handlerErr
			})

			assert.Equal(t, tt.wantHandled, handled, "handler called")
			assert.Equal(t, tt.wantSettled, breaker.settled)
			select {
			case <-msg.Acked():
				require.True(t, tt.wantAck, "acked, want nacked")
			case <-msg.Nacked():
				require.False(t, tt.wantAck, "nacked, want acked")
			default:
				t.Fatal("neither acked nor nacked")
			}
		})
	}
}
