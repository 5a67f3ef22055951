// This file holds the run log: the steps the last install, update or
// rollback went through, each with its duration and result, which
// update.yaml keeps with the run's outcome and the census report carries,
// so that an operator sees why a host failed without logging in to it.

package updater

import "time"

// MaxRunSteps bounds the steps a run log keeps; a longer run keeps its
// first steps and its outcome.
const MaxRunSteps = 32

// Results of a RunStep.
const (
	RunStepOK = "ok"
)

// RunStep is one step of a run: the Step reached (or "failed" for the
// outcome of a failed run), the time since the previous step, and "ok" or
// the error code of the failure.
type RunStep struct {
	Name       string `yaml:"name" json:"name"`
	DurationMS int64  `yaml:"duration_ms" json:"duration_ms"`
	Result     string `yaml:"result" json:"result"`
}

// runLog records the steps of one locked run.
type runLog struct {
	now   func() time.Time
	last  time.Time
	steps []RunStep
}

// newRunLog starts a run log at now().
func newRunLog(now func() time.Time) *runLog {
	return &runLog{now: now, last: now()}
}

// add records step name with result, timed since the previous one.
func (l *runLog) add(name, result string) {
	if l == nil || len(l.steps) >= MaxRunSteps {
		return
	}
	t := l.now()
	l.steps = append(l.steps, RunStep{Name: name, DurationMS: max(0, t.Sub(l.last).Milliseconds()), Result: result})
	l.last = t
}

// outcome returns the steps so far plus, for a failed run (code not
// empty), a last "failed" step with the error code.
func (l *runLog) outcome(code string) []RunStep {
	if l == nil {
		return nil
	}
	steps := append([]RunStep(nil), l.steps...)
	if code != "" {
		t := l.now()
		steps = append(steps, RunStep{Name: "failed", DurationMS: max(0, t.Sub(l.last).Milliseconds()), Result: code})
	}
	return steps
}
