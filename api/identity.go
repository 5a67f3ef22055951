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
	// Quota is the enrollment token's limit on the hosts of its group,
	// applied when the report would add a host.
	Quota Quota
}

// Quota limits the hosts an enrollment token's group may hold; zero
// fields are no limit.
type Quota struct {
	// MaxHosts is the most hosts the group may hold.
	MaxHosts int
	// NewHostsPerHour is the most hosts the group may gain in any hour.
	NewHostsPerHour int
}

// Refusals of a report that would exceed its token's quota, or that comes
// too soon after its host's last one. Each wraps ErrQuota.
var (
	ErrQuota = errors.New("census quota exceeded")
	// ErrMaxHosts: the group holds its token's max_hosts already (403).
	ErrMaxHosts = &quotaError{msg: "the token's group holds its max_hosts already; a new host is refused", retry: false}
	// ErrNewHostsPerHour: the group gained its token's new_hosts_per_hour
	// in the last hour (429).
	ErrNewHostsPerHour = &quotaError{msg: "the token's group gained its new_hosts_per_hour in the last hour; retry later", retry: true}
	// ErrTooFrequent: the host reported moments ago (429).
	ErrTooFrequent = &quotaError{msg: "this host reported moments ago; retry later", retry: true}
)

// quotaError is a quota refusal; Retry says waiting helps (429) rather
// than not (403).
type quotaError struct {
	msg   string
	retry bool
}

func (e *quotaError) Error() string { return e.msg }
func (e *quotaError) Unwrap() error { return ErrQuota }

// RetryLater reports whether err is a quota refusal that waiting lifts.
func RetryLater(err error) bool {
	var q *quotaError
	return errors.As(err, &q) && q.retry
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
