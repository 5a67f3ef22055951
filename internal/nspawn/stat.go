package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// procStat is the part of /proc/PID/stat the harness needs.
type procStat struct {
	pid   int
	comm  string
	ppid  int
	start uint64 // start time in clock ticks after boot; 0 when absent
}

// errBadStat is returned (wrapped) by parseStat for malformed input.
var errBadStat = errors.New("malformed /proc/PID/stat")

// parseStat parses the "pid (comm) state ppid ... starttime ..." line of
// /proc/PID/stat.
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
	st := procStat{pid: pid, comm: string(b[open+1 : closing]), ppid: ppid}
	// Field 22 (starttime) is rest[19]: rest[0] is field 3 (state).
	if len(rest) >= 20 {
		st.start, err = strconv.ParseUint(string(rest[19]), 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("%w: bad starttime %q", errBadStat, rest[19])
		}
	}
	return st, nil
}
