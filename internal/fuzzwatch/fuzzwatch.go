// Package fuzzwatch turns a fuzz input that runs too long into a crash.
//
// Go's fuzzer has no per-input time limit: a target stuck on one input keeps
// its worker busy, the coordinator reports "0 execs/s" and the run still ends
// in PASS when -fuzztime is up. A crash, by contrast, makes the fuzzer save
// the input under testdata/fuzz and fail. Every fuzz target starts its body
// with
//
//	defer fuzzwatch.Start()()
//
// so a hang becomes a recorded, failing input that unit tests then replay.
package fuzzwatch

import (
	"fmt"
	"time"
)

// Limit is how long one fuzz input may run. Parsers of outside data finish
// in microseconds; ten seconds leaves room for the race detector on a busy
// machine and still fails well within the fuzz stage's budget.
const Limit = 10 * time.Second

// Start arms a watchdog for one input and returns the function that disarms
// it. If the input is still running after Limit, the watchdog panics on its
// own goroutine, which ends the process: the fuzzer records the input as a
// crasher, and a plain `go test` run fails naming the cause.
func Start() (stop func()) {
	return start(Limit)
}

func start(limit time.Duration) (stop func()) {
	t := time.AfterFunc(limit, func() {
		panic(fmt.Sprintf("fuzzwatch: one fuzz input ran longer than %v; the target hangs or is far too slow on it", limit))
	})
	return func() { t.Stop() }
}
