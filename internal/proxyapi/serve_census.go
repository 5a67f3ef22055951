package proxyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gravitational/teleport-update/internal/census/store"
)

// CensusForgetEvery is how often Serve deletes the census hosts not seen for
// ServeConfig.CensusForgetAfter.
const CensusForgetEvery = time.Hour

// censusDB is Serve's census database, with the goroutine that forgets
// hosts gone silent.
type censusDB struct {
	store *store.Store
	stop  func() // stops forgetting; runs before the database closes
	path  string
	log   *slog.Logger
}

// openCensus opens cfg.CensusDB and sets cfg.API's census fields; it
// returns nil without a CensusDB. A database that cannot be opened fails
// with CensusRequired; otherwise it is logged, and the proxy serves find and
// install.sh without census (503, and ReadyPath says not ready).
func openCensus(ctx context.Context, log *slog.Logger, cfg *ServeConfig) (*censusDB, error) {
	if cfg.CensusDB == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, cfg.CensusDB, store.Options{Logger: log, PasswordFile: cfg.CensusPasswordFile})
	if err != nil {
		if cfg.CensusRequired {
			return nil, fmt.Errorf("open census database (--census-required): %w", err)
		}
		log.Error("Census database could not be opened; serving find and install.sh without census, and /readyz reports not ready. Fix or move the file and restart the proxy.",
			"database", store.Redact(cfg.CensusDB), "error", err.Error())
		cfg.API.CensusUnavailable = err
		return nil, nil
	}
	cfg.API.Census = st
	cfg.API.Rollout = st
	cfg.API.CensusHealth = st.WriteFailure
	c := &censusDB{store: st, stop: func() {}, path: store.Redact(cfg.CensusDB), log: log}
	if after := cfg.CensusForgetAfter; after > 0 {
		forgetCtx, stopForget := context.WithCancel(ctx)
		forgotten := make(chan struct{})
		go func() {
			defer close(forgotten)
			forgetStaleHosts(forgetCtx, log, st, after)
		}()
		c.stop = func() { stopForget(); <-forgotten }
	}
	return c, nil
}

// close stops forgetting, then closes the database. A nil c does nothing.
func (c *censusDB) close() {
	if c == nil {
		return
	}
	c.stop()
	if err := c.store.Close(); err != nil {
		c.log.Error("Closing the census database failed.", "path", c.path, "error", err.Error())
	}
}

// forgetStaleHosts deletes the hosts not seen for after, at once and then
// every CensusForgetEvery, until ctx is done. A failure is logged and tried
// again on the next tick.
func forgetStaleHosts(ctx context.Context, log *slog.Logger, st *store.Store, after time.Duration) {
	tick := time.NewTicker(CensusForgetEvery)
	defer tick.Stop()
	for {
		_, err := st.Forget(ctx, time.Now().Add(-after))
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, store.ErrAllStale):
			log.Warn("No census host has reported within --census-forget-after; deleting none of them. Check this proxy's clock, or remove the database to start afresh.",
				"not_seen_for", after, "error", err.Error())
		default:
			log.Error("Deleting census hosts not seen recently failed; trying again later.",
				"not_seen_for", after, "retry_in", CensusForgetEvery, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// registerMetrics exports the census store's group-commit counters:
// reports per transaction is the batch size fsyncs are shared by. A nil c
// registers nothing.
func (c *censusDB) registerMetrics(reg prometheus.Registerer) error {
	if c == nil {
		return nil
	}
	st := c.store
	for _, m := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_transactions_total",
			Help: "Census database transactions committed by the batch writer.",
		}, func() float64 { return float64(st.Stats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_reports_stored_total",
			Help: "Census reports committed by the batch writer.",
		}, func() float64 { return float64(st.Stats().Reports) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_write_errors_total",
			Help: "Census reports not stored because the database failed (disk full, I/O error, locked, corrupt).",
		}, func() float64 { return float64(st.Stats().WriteErrors) }),
	} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("register census metrics: %w", err)
		}
	}
	return nil
}
