package updater

import (
	"crypto/rand"
	"fmt"

	"github.com/gravitational/teleport-update/api"
)

// ensureUpdaterID gives spec an updater id unless it has a valid one.
func ensureUpdaterID(spec *Spec) error {
	if api.ValidUpdaterID(spec.UpdaterID) {
		return nil
	}
	id, err := newUpdaterID()
	if err != nil {
		return err
	}
	spec.UpdaterID = id
	return nil
}

// newUpdaterID returns a random (version 4) UUID in lowercase, the form
// api.ValidUpdaterID accepts and Teleport's updater_uuid has.
func newUpdaterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate updater id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
