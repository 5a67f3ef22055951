package census

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Salt sizes for host ids.
const (
	// SaltSize is the size NewSalt returns.
	SaltSize = 32
	// MinSaltSize is the shortest salt HostID accepts: shorter keys would
	// let anyone who knows a machine id recompute its host id.
	MinSaltSize = 16
)

// hostIDContext separates host ids from any other use of the salt.
const hostIDContext = "teleport-update census host id v1\x00"

// NewSalt returns a fresh random salt for host ids. The updater makes one at
// install time and keeps it in its state; a reinstall makes a new one, so the
// host id changes with it.
func NewSalt() ([]byte, error) {
	b := make([]byte, SaltSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate census salt: %w", err)
	}
	return b, nil
}

// HostID returns hex(HMAC-SHA256(salt, context || machineID)): stable for
// one installation, not reversible to the machine id, and not linkable to
// other systems that see the raw machine id.
//
// A host without a machine id (containers, minimal images) gets an id keyed
// by the salt alone, in a separate domain: still stable for the
// installation and still unlinkable, so such hosts are counted rather than
// refused by the proxy. HostID returns "" only when salt is shorter than
// MinSaltSize.
func HostID(machineID string, salt []byte) string {
	if len(salt) < MinSaltSize {
		return ""
	}
	mac := hmac.New(sha256.New, salt)
	mac.Write([]byte(hostIDContext))
	if machineID == "" {
		mac.Write([]byte(noMachineIDContext))
	} else {
		mac.Write([]byte("machine-id:"))
		mac.Write([]byte(machineID))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// noMachineIDContext separates salt-only ids from machine-id based ones; a
// machine id is hex, so it can never collide with this text.
const noMachineIDContext = "no machine id"

// readMachineID returns the machine id from etc/machine-id (or the older
// var/lib/dbus/machine-id): 32 hex digits, lowercased; "" when missing,
// "uninitialized" (first boot) or malformed.
func readMachineID(fsys *hostFS) string {
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		b, err := fsys.readFile(p, maxSmallFile)
		if err != nil {
			continue
		}
		id := strings.ToLower(strings.TrimSpace(string(b)))
		if len(id) == 32 && isHex(id) && strings.Trim(id, "0") != "" {
			return id
		}
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
