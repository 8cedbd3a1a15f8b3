package jsonl

import "time"

// The times a line can hold: RFC 3339 has four-digit years, so a clock
// before year 0 or after 9999 (a dead RTC battery, a bad NTP answer) would
// write a line the reader refuses.
var (
	minRecordTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxRecordTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// clampTime is t within what a line can hold, so a record is stored and
// delivered whatever the clock says; its EnqueuedAt is then the nearest
// time the format holds.
func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minRecordTime):
		return minRecordTime
	case t.After(maxRecordTime):
		return maxRecordTime
	}
	return t
}
