package install

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// ErrJobFailed: a systemd start/stop/restart job finished with a result
// other than "done".
var ErrJobFailed = errors.New("systemd job failed")

// UnitState is what the health check watches.
type UnitState struct {
	ActiveState string // active, activating, deactivating, inactive, failed, reloading
	SubState    string // e.g. running, auto-restart, exited, dead
	MainPID     uint32 // 0 when no main process
	NRestarts   uint32 // automatic restarts since the last manual start
	// LoadState is "loaded" when systemd has a unit file for it,
	// "not-found" when it has none.
	LoadState string
	// UnitFileState is "enabled", "disabled", "static", "masked", ... ("" without a unit file).
	UnitFileState string
}

// Systemd is what the updater needs from the service manager. Every method
// is bound by ctx; implementations must be safe to call one at a time (no
// concurrency is required).
type Systemd interface {
	// DaemonReload makes systemd re-read unit files (systemctl daemon-reload)
	// and returns once the reload finished.
	DaemonReload(ctx context.Context) error
	// Start starts unit and waits for the job to finish. It fails with
	// ErrJobFailed when the job result is not "done". "done" only means the
	// start job completed; it says nothing about the service staying up.
	Start(ctx context.Context, unit string) error
	// Restart restarts (or starts) unit and waits like Start. A manual
	// restart resets the unit's NRestarts counter.
	Restart(ctx context.Context, unit string) error
	// Reload reloads unit (systemctl reload: ExecReload=, which for the
	// agent is SIGHUP) and waits like Start. "done" only means ExecReload
	// ran; the agent hands over to its new process afterwards. It fails
	// when the unit is not active.
	Reload(ctx context.Context, unit string) error
	// Stop stops unit and waits like Start.
	Stop(ctx context.Context, unit string) error
	// ResetFailed clears the failed state and start rate limit of unit
	// (systemctl reset-failed). A unit that is not loaded is not an error.
	ResetFailed(ctx context.Context, unit string) error
	// Enable enables units by name (systemctl enable, not runtime, forced
	// over conflicting symlinks). It does not start them.
	Enable(ctx context.Context, units ...string) error
	// Disable disables units by name (systemctl disable). It does not stop them.
	Disable(ctx context.Context, units ...string) error
	// State returns the unit's current state (MainPID and NRestarts for
	// .service units only). An unknown unit is reported as inactive/dead,
	// as systemd does.
	State(ctx context.Context, unit string) (UnitState, error)
	// ShuttingDown reports whether the system is shutting down (or
	// rebooting): shutdown.target is active or has a job queued, which is
	// how systemd itself decides its state is "stopping".
	ShuttingDown(ctx context.Context) (bool, error)
	// Close releases the connection.
	Close()
}

// dbusSystemd implements Systemd over systemd's D-Bus API.
type dbusSystemd struct {
	conn      *sddbus.Conn
	closeConn context.CancelFunc // ends the context the connection was made with
}

// NewDBus connects to systemd over the system bus, falling back to
// systemd's private socket (/run/systemd/private, root only) on hosts
// without a running D-Bus daemon. ctx bounds connecting, not the
// connection: it stays open until Close, so a run that is being stopped
// can still use it to go back (each call takes its own context).
func NewDBus(ctx context.Context) (Systemd, error) {
	// godbus closes a connection when the context it was made with ends.
	connCtx, closeConn := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, closeConn)
	conn, err := sddbus.NewSystemConnectionContext(connCtx)
	if err != nil {
		var perr error
		conn, perr = sddbus.NewSystemdConnectionContext(connCtx)
		if perr != nil {
			closeConn()
			return nil, fmt.Errorf("connect to systemd: system bus: %w; private socket: %w", err, perr)
		}
	}
	if !stop() { // ctx ended while connecting
		conn.Close()
		closeConn()
		return nil, fmt.Errorf("connect to systemd: %w", ctx.Err())
	}
	return &dbusSystemd{conn: conn, closeConn: closeConn}, nil
}

func (d *dbusSystemd) Close() {
	d.conn.Close()
	d.closeConn()
}

func (d *dbusSystemd) DaemonReload(ctx context.Context) error {
	if err := d.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return nil
}

// jobFunc is the shape of go-systemd's Start/Stop/RestartUnitContext.
type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

func waitJob(ctx context.Context, op, unit string, f jobFunc) error {
	ch := make(chan string, 1) // buffered: go-systemd must never block on it
	if _, err := f(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("systemd %s %s: %w", op, unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("systemd %s %s: %w: result %q", op, unit, ErrJobFailed, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemd %s %s: waiting for job: %w", op, unit, ctx.Err())
	}
}

func (d *dbusSystemd) Start(ctx context.Context, unit string) error {
	return waitJob(ctx, "start", unit, d.conn.StartUnitContext)
}

func (d *dbusSystemd) Restart(ctx context.Context, unit string) error {
	return waitJob(ctx, "restart", unit, d.conn.RestartUnitContext)
}

func (d *dbusSystemd) Reload(ctx context.Context, unit string) error {
	return waitJob(ctx, "reload", unit, d.conn.ReloadUnitContext)
}

func (d *dbusSystemd) Stop(ctx context.Context, unit string) error {
	return waitJob(ctx, "stop", unit, d.conn.StopUnitContext)
}

func (d *dbusSystemd) ResetFailed(ctx context.Context, unit string) error {
	err := d.conn.ResetFailedUnitContext(ctx, unit)
	if dbusErrorName(err) == "org.freedesktop.systemd1.NoSuchUnit" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("systemd reset-failed %s: %w", unit, err)
	}
	return nil
}

func (d *dbusSystemd) Enable(ctx context.Context, units ...string) error {
	if _, _, err := d.conn.EnableUnitFilesContext(ctx, units, false, true); err != nil {
		return fmt.Errorf("systemd enable %v: %w", units, err)
	}
	return nil
}

func (d *dbusSystemd) Disable(ctx context.Context, units ...string) error {
	if _, err := d.conn.DisableUnitFilesContext(ctx, units, false); err != nil {
		return fmt.Errorf("systemd disable %v: %w", units, err)
	}
	return nil
}

func (d *dbusSystemd) State(ctx context.Context, unit string) (UnitState, error) {
	props, err := d.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitState{}, fmt.Errorf("systemd state of %s: %w", unit, err)
	}
	st := UnitState{}
	st.ActiveState, _ = props["ActiveState"].(string)
	st.SubState, _ = props["SubState"].(string)
	st.LoadState, _ = props["LoadState"].(string)
	st.UnitFileState, _ = props["UnitFileState"].(string)
	if !strings.HasSuffix(unit, ".service") {
		return st, nil // MainPID and NRestarts exist for services only
	}
	svc, err := d.conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return UnitState{}, fmt.Errorf("systemd service state of %s: %w", unit, err)
	}
	st.MainPID, _ = svc["MainPID"].(uint32)
	st.NRestarts, _ = svc["NRestarts"].(uint32)
	return st, nil
}

// shutdownTarget is the unit every way of stopping the system (poweroff,
// reboot, halt, kexec) goes through.
const shutdownTarget = "shutdown.target"

func (d *dbusSystemd) ShuttingDown(ctx context.Context) (bool, error) {
	props, err := d.conn.GetUnitPropertiesContext(ctx, shutdownTarget)
	if err != nil {
		return false, fmt.Errorf("systemd state of %s: %w", shutdownTarget, err)
	}
	return shuttingDown(props), nil
}

// shuttingDown decides from shutdown.target's properties: active or
// activating, or a job queued (Job is the struct (job id, path), id 0 for
// none).
func shuttingDown(props map[string]any) bool {
	switch state, _ := props["ActiveState"].(string); state {
	case "active", "activating":
		return true
	}
	job, _ := props["Job"].([]any)
	if len(job) == 0 {
		return false
	}
	id, _ := job[0].(uint32)
	return id != 0
}

// dbusErrorName returns the D-Bus error name carried by err, or "".
func dbusErrorName(err error) string {
	var v godbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	var p *godbus.Error
	if errors.As(err, &p) && p != nil {
		return p.Name
	}
	return ""
}
