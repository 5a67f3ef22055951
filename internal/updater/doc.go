// Package updater is the update loop of one host. Every operation has the
// same three parts:
//
//   - decide (decide.go): a pure function from update.yaml, the proxy's
//     answer and what was asked to a decision: move to V, nothing to do
//     because …, or refuse because ….
//   - converge (converge.go): make the host run version V: links, units,
//     daemon-reload, reload or restart (handover.go), health check. A
//     switch, the way back from a failed switch and the repair after a
//     crash all use it (switch.go, repair.go), after fetch.go put V on
//     disk, verified.
//   - commit (state.go): the state store, the only writer of update.yaml,
//     records the outcome through named transitions.
//
// update.yaml is the commit point: it records a version as active only
// after the host runs it, healthy. A run killed at any step (steps.go)
// leaves the previous state recorded, and the next run first puts links
// and units back to it.
//
// Every operation that takes update.lock first moves an install made by an
// earlier build, which kept its tree in Teleport's data directory, over to
// the updater's own (migrate.go, with its own crash-tested steps).
//
// The public operations are in ops.go, install.go and uninstall.go; errors
// and their classification in errors.go; the census hook in report.go.
package updater
