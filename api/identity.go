package api

import (
	"crypto/ed25519"
	"errors"
)

// Identity is what a signed census report proved about its sender: the
// host's public key and the signature's sequence number.
//
// The first report of a host id binds the key and the enrollment token's
// group to it (trust on first use); every later report of that host id must
// be signed by that key, come with a token of that group and carry a larger
// sequence number. Binding a new key is an admin's act (re-enrolling).
type Identity struct {
	Key ed25519.PublicKey
	Seq int64
}

// Refusals of a signed report that conflicts with its host's binding. Each
// wraps ErrHostConflict; the proxy answers them with 409 Conflict.
var (
	ErrHostConflict = errors.New("census report conflicts with its host's enrollment")
	// ErrUnsignedBound: an unsigned report for a host id bound to a key.
	ErrUnsignedBound = wrapConflict("the host id is bound to a key; its reports must be signed")
	// ErrKeyMismatch: the host id is bound to another key.
	ErrKeyMismatch = wrapConflict("the host id is bound to another key; an admin must re-enroll the host")
	// ErrGroupMismatch: the host id is bound to another update group.
	ErrGroupMismatch = wrapConflict("the host id is enrolled in another update group; an admin must re-enroll the host")
	// ErrReplay: the sequence number is not larger than the last one seen.
	ErrReplay = wrapConflict("the report's sequence number is not newer than the last one stored (replayed or reordered)")
)

type conflict struct{ msg string }

func (c *conflict) Error() string { return c.msg }
func (c *conflict) Unwrap() error { return ErrHostConflict }

func wrapConflict(msg string) error { return &conflict{msg: msg} }
