package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// procStat is the part of /proc/PID/stat the harness needs.
type procStat struct {
	pid  int
	comm string
	ppid int
}

// errBadStat is returned (wrapped) by parseStat for malformed input.
var errBadStat = errors.New("malformed /proc/PID/stat")

// parseStat parses the "pid (comm) state ppid ..." line of /proc/PID/stat.
// comm may contain spaces and parentheses: it ends at the last ')'.
func parseStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return procStat{}, fmt.Errorf("%w: no (comm) field", errBadStat)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return procStat{}, fmt.Errorf("%w: bad pid %q", errBadStat, bytes.TrimSpace(b[:open]))
	}
	rest := bytes.Fields(b[closing+1:])
	if len(rest) < 2 {
		return procStat{}, fmt.Errorf("%w: missing state or ppid", errBadStat)
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("%w: bad ppid %q", errBadStat, rest[1])
	}
	return procStat{pid: pid, comm: string(b[open+1 : closing]), ppid: ppid}, nil
}
