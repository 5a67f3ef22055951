package fuzzwatch

import "strings"

// HardYAML returns documents that make YAML parsers work hard: an alias
// expansion bomb, deep flow nesting and a long run of one character (the
// input the fuzzer was minimizing when its runs first stalled). Every fuzz
// target of a reader of outside YAML seeds its corpus with them.
func HardYAML() [][]byte {
	var bomb strings.Builder
	bomb.WriteString(`a: &a ["x","x","x","x","x","x","x","x","x"]` + "\n")
	for c := 'b'; c <= 'i'; c++ {
		prev := string(c - 1)
		bomb.WriteString(string(c) + ": &" + string(c) + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",") + "]\n")
	}
	return [][]byte{
		[]byte(bomb.String()),
		[]byte(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		[]byte("a: " + strings.Repeat("{b: ", 3000) + "c" + strings.Repeat("}", 3000)),
		[]byte("0" + strings.Repeat("@", 4096)),
	}
}
