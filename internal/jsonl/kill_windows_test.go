//go:build windows

package jsonl

// The kill -9 test needs SIGKILL; on Windows the child switch is inert.
const killChildEnv = "SYNCBREAKER_KILL_CHILD"

func runKillChild() int { return 1 }
