package schedule

import (
	"math/rand/v2"
	"time"
)

// Jitter returns a uniformly random delay in [0, maxDelay). It returns 0 when maxDelay
// is zero or negative. rnd supplies randomness; nil uses the global
// math/rand/v2 source (seeded from the OS), which is what production wants.
func Jitter(maxDelay time.Duration, rnd *rand.Rand) time.Duration {
	if maxDelay <= 0 {
		return 0
	}
	if rnd == nil {
		return time.Duration(rand.Int64N(int64(maxDelay)))
	}
	return time.Duration(rnd.Int64N(int64(maxDelay)))
}
