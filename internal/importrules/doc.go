// Package importrules holds the test that enforces which packages of the
// module may depend on which (rules_test.go): the pure leaves import
// nothing of the module above them, the agent never links the proxy's
// server code (nor Prometheus), the wire package imports neither side, the
// proxy never links the agent, and nothing imports the CLI.
//
// It has no code of its own; `go test ./...` runs the rules.
package importrules
