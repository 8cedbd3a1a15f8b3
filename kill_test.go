package syncbreaker

const killChildEnv = "SYNCBREAKER_KILL_CHILD"

func runKillChild() int { return 0 }
