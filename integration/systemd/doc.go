// Package systemd holds the real-systemd integration suite: tests that boot systemd in systemd-nspawn containers
// (internal/nspawn) and check, against that real systemd, the D-Bus wrapper
// of internal/updater/install, the rendered units (systemd-analyze verify) and the
// full install/update/rollback/timer scenarios through the teleport-update
// binary.
//
// The suite needs root and the cached rootfs (scripts/systemd-rootfs.sh;
// scripts/test-systemd.sh does both). With CI=true it is mandatory: when the
// harness is unavailable the suite tries the rootfs script once and then
// fails. Elsewhere it skips with a loud "REAL-SYSTEMD SUITE SKIPPED" line.
package systemd
